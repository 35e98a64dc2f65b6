"""A child's lineage record, staleness and rejuvenation, and the steps a trial is asked for."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbt_service.core.evolution import decision_rng, next_trial, steps_to_train
from pbt_service.core.lineage_record import child_record, is_stale
from pbt_service.core.types import (
    AlgorithmConfig,
    Comparison,
    Goal,
    LineageRecord,
    Measurement,
    Objective,
    ParameterSpec,
    ParameterType,
    PopulationView,
    Scale,
    SelectionConfig,
    StudyConfig,
    Trial,
    TrialStatus,
)

LEX, PARETO = Comparison.LEXICOGRAPHIC, Comparison.PARETO
ACC = (Objective("acc"),)
LOSS = (Objective("loss", Goal.MINIMIZE),)
LR = ParameterSpec("lr", ParameterType.FLOAT, low=1e-5, high=1.0, scale=Scale.LOG)
POP = 4
S = 100


FRESH = LineageRecord()


def trial(id: int, acc: float, *, generation: int = 0, step: int = S, lineage: LineageRecord = FRESH) -> Trial:
    return Trial(
        id=id,
        study="s",
        number=id,
        generation=generation,
        status=TrialStatus.COMPLETED,
        hparams={"lr": 0.01 * id},
        final_measurement=Measurement(step, {"acc": acc, "loss": -acc}, f"/ckpt/{id}"),
        lineage=lineage,
    )


# --- child_record --------------------------------------------------------------------------------


def test_a_continuing_child_appends_its_parents_final_and_keeps_the_exploit() -> None:
    parent = trial(1, 0.5, generation=3, step=400, lineage=LineageRecord(((300, (0.4,)),), 200, 2, (0.6,), 1))
    record = child_record(parent, parent, ACC, LEX, 3)
    assert record.history == ((300, (0.4,)), (400, (0.5,)))
    assert (record.exploit_step, record.exploit_generation) == (200, 2)
    assert (record.best, record.best_generation) == ((0.6,), 1)  # 0.5 did not beat the lineage's 0.6
    assert record.start_step == 400


def test_copying_another_member_is_an_exploit_at_the_parents_final_step() -> None:
    parent = trial(2, 0.9, generation=2, step=300, lineage=LineageRecord(((200, (0.8,)),), 100, 1, (0.8,), 1))
    initiator = trial(1, 0.1, generation=3, step=400, lineage=LineageRecord(((300, (0.05,)),), 0, 0, (0.2,), 0))
    record = child_record(parent, initiator, ACC, LEX, 3)
    assert (record.exploit_step, record.exploit_generation) == (300, 4)  # the child's generation
    assert record.history == ((200, (0.8,)), (300, (0.9,)))  # the parent's line, not the initiator's
    assert (record.best, record.best_generation) == ((0.9,), 2)  # the parent improved its line's best
    assert record.start_step == 300


@pytest.mark.parametrize(("window", "kept"), [(1, 1), (2, 2), (3, 3), (16, 5)])
def test_the_history_is_trimmed_to_the_window(window: int, kept: int) -> None:
    ancestors = tuple((100 * i, (float(i),)) for i in range(1, 5))
    parent = trial(1, 5.0, generation=4, step=500, lineage=LineageRecord(history=ancestors))
    record = child_record(parent, parent, ACC, LEX, window)
    assert len(record.history) == kept
    assert record.history[-1] == (500, (5.0,))  # the parent's own final is always kept: the start step
    assert record.history == (*ancestors, (500, (5.0,)))[-kept:]


def test_the_first_child_of_a_fresh_line_starts_its_best_with_the_parent() -> None:
    parent = trial(1, 0.3, generation=0)
    record = child_record(parent, parent, ACC, LEX, 3)
    assert record == LineageRecord(history=((S, (0.3,)),), best=(0.3,), best_generation=0)


def test_best_is_oriented_for_minimized_objectives() -> None:
    lineage = LineageRecord(best=(-0.5,), best_generation=2)  # a loss of 0.5

    def with_loss(loss: float) -> Trial:
        return replace(trial(1, 0.0, generation=5, lineage=lineage), final_measurement=Measurement(S, {"loss": loss}))

    lower = child_record(with_loss(0.4), with_loss(0.4), LOSS, LEX, 3)
    assert (lower.best, lower.best_generation) == ((-0.4,), 5)
    higher = child_record(with_loss(0.6), with_loss(0.6), LOSS, LEX, 3)
    assert (higher.best, higher.best_generation) == ((-0.5,), 2)


# --- is_stale ------------------------------------------------------------------------------------


def test_stale_after_the_given_generations_without_beating_the_best() -> None:
    lineage = LineageRecord(best=(0.9,), best_generation=2)
    assert not is_stale(trial(1, 0.5, generation=4, lineage=lineage), ACC, LEX, 3)
    assert is_stale(trial(1, 0.5, generation=5, lineage=lineage), ACC, LEX, 3)
    assert is_stale(trial(1, 0.9, generation=5, lineage=lineage), ACC, LEX, 3)  # equal is no improvement


def test_a_trial_that_beats_its_lineages_best_is_never_stale() -> None:
    lineage = LineageRecord(best=(0.9,), best_generation=0)
    assert not is_stale(trial(1, 0.95, generation=50, lineage=lineage), ACC, LEX, 1)


def test_zero_generations_means_never_and_a_fresh_line_is_not_stale() -> None:
    lineage = LineageRecord(best=(0.9,), best_generation=0)
    assert not is_stale(trial(1, 0.1, generation=50, lineage=lineage), ACC, LEX, 0)
    assert not is_stale(trial(1, 0.1, generation=50), ACC, LEX, 1)


def test_a_diverged_trial_with_a_best_behind_it_is_stale() -> None:
    lineage = LineageRecord(best=(0.9,), best_generation=0)
    assert is_stale(trial(1, math.nan, generation=2, lineage=lineage), ACC, LEX, 2)


def test_pareto_staleness_needs_domination_to_refresh() -> None:
    ab = (Objective("acc"), Objective("loss"))  # both maximized: (acc, -acc) is a trade-off, never dominating
    lineage = LineageRecord(best=(0.5, -0.5), best_generation=0)
    assert is_stale(trial(1, 0.9, generation=3, lineage=lineage), ab, PARETO, 2)
    assert not is_stale(trial(1, 0.9, generation=3, lineage=lineage), ab, LEX, 2)


# --- rejuvenation through next_trial -------------------------------------------------------------


def config(rejuvenate: int, **selection: object) -> StudyConfig:
    return StudyConfig(
        (LR,),
        ACC,
        algorithm=AlgorithmConfig(
            population_size=POP,
            steps_per_trial=S,
            rejuvenate_after_generations=rejuvenate,
            selection=SelectionConfig(**{"ready_generations": 1, **selection}),  # type: ignore[arg-type]
        ),
    )


def view(initiator: Trial, *opponents: Trial) -> PopulationView:
    return PopulationView(POP, 2 * POP, initiator, POP, opponents)


STALE = LineageRecord(history=((300, (0.8,)),), best=(0.9,), best_generation=1)


def test_a_stale_initiator_that_is_not_the_best_restarts_from_scratch() -> None:
    initiator = trial(1, 0.5, generation=4, step=500, lineage=STALE)
    better = trial(2, 0.6, generation=4, step=500)
    for n in range(20):
        p = next_trial(config(3), view(initiator, better), decision_rng(0, n))
        assert p is not None
        assert (p.parent_trial_id, p.warm_start_checkpoint_path, p.initiator_id) == (None, "", 1)
        assert p.generation == 5 and p.steps == S and p.lineage == LineageRecord()
        assert 1e-5 <= float(p.hparams["lr"]) <= 1.0


def test_a_stale_best_member_is_not_rejuvenated() -> None:
    initiator = trial(1, 0.5, generation=4, step=500, lineage=STALE)
    worse = trial(2, 0.4, generation=4, step=500)
    p = next_trial(config(3), view(initiator, worse), decision_rng(0, 0))
    assert p is not None and p.parent_trial_id == 1 and p.warm_start_checkpoint_path == "/ckpt/1"
    alone = next_trial(config(3), view(initiator), decision_rng(0, 0))
    assert alone is not None and alone.parent_trial_id == 1


def test_a_lineage_that_is_not_stale_yet_is_not_rejuvenated() -> None:
    initiator = trial(1, 0.5, generation=4, step=500, lineage=STALE)
    better = trial(2, 0.6, generation=4, step=500)
    p = next_trial(config(4), view(initiator, better), decision_rng(0, 0))
    assert p is not None and p.parent_trial_id == 2  # 4 - 1 < 4: a plain tournament the better one wins
    never = next_trial(config(0), view(initiator, better), decision_rng(0, 0))
    assert never is not None and never.parent_trial_id == 2


def test_a_stale_initiator_that_is_not_ready_continues_rather_than_restarting() -> None:
    initiator = trial(1, 0.5, generation=4, step=500, lineage=STALE)
    p = next_trial(config(3, burn_in_steps=600), view(initiator, trial(2, 0.6, generation=4)), decision_rng(0, 0))
    assert p is not None and p.parent_trial_id == 1 and p.hparams == initiator.hparams


# --- steps_to_train ------------------------------------------------------------------------------


def steps_config(per_trial: int) -> StudyConfig:
    return StudyConfig((LR,), ACC, algorithm=AlgorithmConfig(population_size=POP, steps_per_trial=per_trial))


def test_a_child_catches_up_to_the_end_of_its_generation() -> None:
    cfg = steps_config(S)
    assert steps_to_train(cfg, 3, 3 * S) == S  # the parent is of the generation before
    assert steps_to_train(cfg, 3, S) == 3 * S  # the parent is of generation 0
    assert steps_to_train(cfg, 3, 250) == 150


def test_a_fresh_line_trains_one_interval() -> None:
    assert steps_to_train(steps_config(S), 0, 0) == S


def test_a_parent_ahead_of_schedule_still_gives_one_interval() -> None:
    assert steps_to_train(steps_config(S), 2, 10 * S) == S


def test_no_steps_per_trial_leaves_it_to_the_worker() -> None:
    assert steps_to_train(steps_config(0), 0, 0) == 0
    assert steps_to_train(steps_config(0), 7, 123) == 0


def test_next_trial_asks_a_child_of_an_old_parent_for_the_catch_up() -> None:
    initiator = trial(1, 0.1, generation=3, step=4 * S)
    old = trial(2, 0.9, generation=1, step=S)  # a rejuvenated line that only trained one interval
    p = next_trial(config(0), view(initiator, old), decision_rng(0, 0))
    assert p is not None and p.parent_trial_id == 2 and p.generation == 4
    assert p.steps == 5 * S - S
    assert p.lineage.start_step == S


@given(st.integers(1, 10_000), st.integers(0, 10_000), st.integers(0, 10**8))
def test_steps_to_train_is_at_least_one_interval_and_reaches_the_generations_end(
    per_trial: int, generation: int, start: int
) -> None:
    steps = steps_to_train(steps_config(per_trial), generation, start)
    assert steps >= per_trial
    assert start + steps >= (generation + 1) * per_trial
    if start <= generation * per_trial:  # on schedule or behind: exactly to the end of the generation
        assert start + steps == (generation + 1) * per_trial
