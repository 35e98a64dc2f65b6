"""Tournament selection and trial suggestion (Algorithm 1 with budget mode)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pytest

from pbt_service.core.evolution import decision_rng, next_trial
from pbt_service.core.selection import select_parent
from pbt_service.core.types import (
    AlgorithmConfig,
    Comparison,
    Measurement,
    Objective,
    ParameterSpec,
    ParameterType,
    ParamValue,
    PopulationView,
    Scale,
    SelectionConfig,
    StudyConfig,
    Trial,
    TrialProposal,
    TrialStatus,
)

LEX, PARETO = Comparison.LEXICOGRAPHIC, Comparison.PARETO
ACC = Objective("acc")
A, B = Objective("a"), Objective("b")
LR = ParameterSpec("lr", ParameterType.FLOAT, low=1e-5, high=1.0, scale=Scale.LOG)
OPT = ParameterSpec("opt", ParameterType.CATEGORICAL, values=("sgd", "adam"))
POP = 4
GREEDY = SelectionConfig(ready_generations=1)
"""Every generation may exploit: these tests are about the tournament itself (the default waits
a generation, see test_by_default_a_line_continues_before_its_first_exploit)."""


def trial(id: int, generation: int = 0, lr: float = 0.01, **metrics: float) -> Trial:
    final = Measurement(step=100, metrics=metrics, checkpoint_path=f"/ckpt/{id}") if metrics else None
    return Trial(
        id=id,
        study="s",
        number=id,
        generation=generation,
        status=TrialStatus.COMPLETED,
        hparams={"lr": lr, "opt": "sgd"},
        final_measurement=final,
    )


def config(
    comparison: Comparison = LEX,
    objectives: tuple[Objective, ...] = (ACC,),
    *,
    seed: int = 0,
    max_trials: int = 0,
    max_generations: int = 0,
) -> StudyConfig:
    algorithm = AlgorithmConfig(
        population_size=POP, seed=seed, max_trials=max_trials, max_generations=max_generations,
        selection=GREEDY,
    )
    return StudyConfig((LR, OPT), objectives, comparison, algorithm)


def ready(initiator: Trial, *opponents: Trial, counted: int = 2 * POP) -> PopulationView:
    """A view in which `initiator` may reproduce now."""
    return PopulationView(
        live_in_generation_zero=POP,
        trials_counted=counted,
        initiator=initiator,
        initiator_generation_size=POP,
        opponents=opponents,
    )


def in_space(hparams: Mapping[str, ParamValue]) -> bool:
    lr = hparams.get("lr")
    return (
        set(hparams) == {"lr", "opt"}
        and type(lr) is float
        and 1e-5 <= lr <= 1.0
        and hparams["opt"] in OPT.values
    )


# --- decision_rng --------------------------------------------------------------------------------


def test_decision_rng_depends_only_on_seed_and_trial_number() -> None:
    assert decision_rng(7, 3).random(5).tolist() == decision_rng(7, 3).random(5).tolist()
    assert decision_rng(7, 3).random() != decision_rng(7, 4).random()
    assert decision_rng(7, 3).random() != decision_rng(8, 3).random()
    assert decision_rng(-1, 0).random() == decision_rng(2**64 - 1, 0).random()


# --- tournament ----------------------------------------------------------------------------------


def run(
    initiator: Trial,
    opponents: list[Trial],
    objectives: tuple[Objective, ...] = (ACC,),
    comparison: Comparison = LEX,
    seed: int = 0,
) -> Trial | None:
    return select_parent(initiator, opponents, objectives, comparison, SelectionConfig(), np.random.default_rng(seed))


@pytest.mark.parametrize("comparison", [LEX, PARETO])
def test_the_better_trial_wins(comparison: Comparison) -> None:
    good, bad = trial(1, acc=0.9), trial(2, acc=0.5)
    assert run(good, [bad], comparison=comparison) is good
    assert run(bad, [good], comparison=comparison) is good


def test_lexicographic_and_pareto_winners_differ_on_trade_offs() -> None:
    initiator, opponent = trial(1, a=1, b=5), trial(2, a=2, b=0)
    assert run(initiator, [opponent], (A, B), LEX) is opponent
    assert run(initiator, [opponent], (A, B), PARETO) is initiator  # neither dominates: a tie
    dominant = trial(3, a=2, b=5)
    assert run(initiator, [dominant], (A, B), PARETO) is dominant


def test_a_tie_goes_to_the_initiator() -> None:
    initiator, opponent = trial(1, acc=0.7), trial(2, acc=0.7)
    assert all(run(initiator, [opponent], seed=s) is initiator for s in range(20))


def test_a_diverged_trial_is_never_the_parent() -> None:
    finite, nan, inf, missing = trial(1, acc=-5.0), trial(2, acc=math.nan), trial(3, acc=math.inf), trial(4)
    for diverged in (nan, inf, missing):
        assert run(finite, [diverged]) is finite
        assert run(diverged, [finite]) is finite


def test_no_finite_contestant_means_no_parent() -> None:
    assert run(trial(1, acc=math.nan), [trial(2, acc=math.inf)]) is None
    assert run(trial(1, acc=math.nan), []) is None


def test_without_opponents_the_initiator_competes_alone() -> None:
    initiator = trial(1, acc=0.1)
    assert run(initiator, []) is initiator


def test_the_opponent_is_drawn_uniformly() -> None:
    initiator = trial(0, acc=0.0)
    opponents = [trial(i, acc=float(i)) for i in range(1, 5)]  # each beats the initiator
    wins = Counter(run(initiator, opponents, seed=s).id for s in range(4000))  # type: ignore[union-attr]
    assert set(wins) == {1, 2, 3, 4}
    assert all(850 < n < 1150 for n in wins.values()), wins


# --- next_trial ----------------------------------------------------------------------------------


def suggest(cfg: StudyConfig, view: PopulationView, number: int = 0) -> TrialProposal | None:
    return next_trial(cfg, view, decision_rng(cfg.algorithm.seed, number))


def test_generation_zero_is_filled_with_random_samples() -> None:
    for live in range(POP):
        view = PopulationView(live_in_generation_zero=live, trials_counted=live)
        p = suggest(config(), view, live)
        assert p is not None and p.generation == 0 and in_space(p.hparams)
        assert (p.parent_trial_id, p.initiator_id, p.warm_start_checkpoint_path) == (None, None, "")


def test_generation_zero_comes_first_even_if_an_initiator_is_waiting() -> None:
    view = replace(ready(trial(1, acc=0.5)), live_in_generation_zero=POP - 1)
    p = suggest(config(), view)
    assert p is not None and p.generation == 0 and p.initiator_id is None


def test_without_an_initiator_it_waits() -> None:
    assert suggest(config(), PopulationView(live_in_generation_zero=POP, trials_counted=POP)) is None


def test_budget_mode_waits_until_the_initiators_generation_is_full() -> None:
    view = ready(trial(1, generation=2, acc=0.5))
    assert suggest(config(), replace(view, initiator_generation_size=POP - 1)) is None
    p = suggest(config(), view)
    assert p is not None and p.generation == 3


def test_the_child_inherits_from_the_winner_and_records_both_ids() -> None:
    initiator = trial(10, generation=1, lr=0.5, acc=0.1)
    opponent = trial(20, generation=1, lr=0.001, acc=0.9)
    p = suggest(config(), ready(initiator, opponent))
    assert p is not None
    assert (p.generation, p.parent_trial_id, p.initiator_id) == (2, 20, 10)
    assert p.warm_start_checkpoint_path == "/ckpt/20"
    assert p.hparams["lr"] in (0.001 * 0.8, 0.001 * 1.2)


def test_the_initiator_is_its_own_parent_when_it_wins() -> None:
    initiator = trial(10, generation=1, lr=0.5, acc=0.9)
    p = suggest(config(), ready(initiator, trial(20, generation=1, acc=0.1)))
    assert p is not None
    assert (p.parent_trial_id, p.initiator_id, p.warm_start_checkpoint_path) == (10, 10, "/ckpt/10")
    assert p.hparams["lr"] in (0.5 * 0.8, 0.5 * 1.2)


def test_all_diverged_gives_a_fresh_sample_without_warm_start() -> None:
    initiator = trial(10, generation=1, acc=math.nan)
    p = suggest(config(), ready(initiator, trial(20, generation=1, acc=math.nan)))
    assert p is not None
    assert (p.generation, p.initiator_id) == (2, 10)
    assert (p.parent_trial_id, p.warm_start_checkpoint_path) == (None, "")
    assert in_space(p.hparams)


def test_parents_only_come_from_the_given_pool() -> None:
    initiator = trial(1, acc=0.0)
    pool = [trial(i, acc=float(i)) for i in (5, 6, 7)]
    parents = {p.parent_trial_id for n in range(300) if (p := suggest(config(), ready(initiator, *pool), n))}
    assert parents == {5, 6, 7}


def test_max_trials_stops_suggestions() -> None:
    cfg = config(max_trials=10)
    assert suggest(cfg, ready(trial(1, acc=0.5), counted=9)) is not None
    assert suggest(cfg, ready(trial(1, acc=0.5), counted=10)) is None
    assert suggest(cfg, PopulationView(live_in_generation_zero=0, trials_counted=10)) is None
    assert suggest(config(max_trials=0), ready(trial(1, acc=0.5), counted=10**6)) is not None


def test_max_generations_is_respected() -> None:
    view = ready(trial(1, generation=1, acc=0.5))
    assert suggest(config(max_generations=2), view) is None
    p = suggest(config(max_generations=3), view)
    assert p is not None and p.generation == 2


def test_same_seed_and_number_give_the_same_proposal() -> None:
    gen0 = PopulationView(live_in_generation_zero=0, trials_counted=0)
    child = ready(trial(1, acc=0.1), trial(2, acc=0.5), trial(3, acc=0.9))
    for view in (gen0, child):
        assert suggest(config(seed=42), view, 7) == suggest(config(seed=42), view, 7)
        assert len({repr(suggest(config(seed=42), view, n)) for n in range(20)}) > 1
    assert suggest(config(seed=1), gen0, 7) != suggest(config(seed=2), gen0, 7)


# --- a whole study, one decision at a time --------------------------------------------------------


def view_of(cfg: StudyConfig, trials: list[Trial]) -> PopulationView:
    """The PopulationView as its docstring defines it (what the store computes with queries)."""
    live = [t for t in trials if t.status in (TrialStatus.ACTIVE, TrialStatus.COMPLETED)]
    max_gen = cfg.algorithm.max_generations
    candidates = [
        t
        for t in trials
        if t.status is TrialStatus.COMPLETED
        and t.initiated_trial_id is None
        and (max_gen == 0 or t.generation + 1 < max_gen)
    ]
    initiator = min(candidates, key=lambda t: (t.generation, t.number), default=None)
    if initiator is None:
        return PopulationView(sum(t.generation == 0 for t in live), len(trials))
    k = cfg.algorithm.opponent_generations
    opponents = tuple(
        t
        for t in trials
        if t.status is TrialStatus.COMPLETED
        and t.id != initiator.id
        and initiator.generation - k < t.generation <= initiator.generation
    )
    return PopulationView(
        sum(t.generation == 0 for t in live),
        len(trials),
        initiator,
        sum(t.generation == initiator.generation for t in live),
        opponents,
    )


def simulate(cfg: StudyConfig, workers: int) -> list[Trial]:
    trials: list[Trial] = []
    while True:
        while sum(t.status is TrialStatus.ACTIVE for t in trials) < workers:
            p = next_trial(cfg, view_of(cfg, trials), decision_rng(cfg.algorithm.seed, len(trials)))
            if p is None:
                break
            if p.initiator_id is not None:
                trials[p.initiator_id] = replace(trials[p.initiator_id], initiated_trial_id=len(trials))
            trials.append(
                Trial(
                    len(trials),
                    "s",
                    len(trials),
                    p.generation,
                    TrialStatus.ACTIVE,
                    p.hparams,
                    p.warm_start_checkpoint_path,
                    p.parent_trial_id,
                    p.initiator_id,
                )
            )
        active = [t for t in trials if t.status is TrialStatus.ACTIVE]
        if not active:
            return trials
        done = active[0]
        acc = -((math.log10(float(done.hparams["lr"])) + 2) ** 2)
        trials[done.id] = replace(
            done,
            status=TrialStatus.COMPLETED,
            final_measurement=Measurement(100, {"acc": acc}, f"/ckpt/{done.id}"),
        )


@pytest.mark.parametrize("workers", [1, 3, POP])
def test_a_budget_mode_study_runs_generation_by_generation(workers: int) -> None:
    cfg = config(max_generations=4, seed=5)
    trials = simulate(cfg, workers)
    assert [t.generation for t in trials] == sorted(t.generation for t in trials)
    assert Counter(t.generation for t in trials) == {0: POP, 1: POP, 2: POP, 3: POP}
    children = [t for t in trials if t.generation > 0]
    assert len({t.initiator_parent_trial_id for t in children}) == len(children)  # one reproduction each
    for t in children:
        assert t.initiator_parent_trial_id is not None and t.parent_trial_id is not None
        assert trials[t.initiator_parent_trial_id].generation == t.generation - 1
        assert t.generation - 1 - cfg.algorithm.opponent_generations < trials[t.parent_trial_id].generation
        assert t.warm_start_checkpoint_path == f"/ckpt/{t.parent_trial_id}"
    assert simulate(cfg, workers) == trials


def test_by_default_a_line_continues_before_its_first_exploit() -> None:
    """The default `ready_generations` (2): a generation-0 initiator's child continues its line with
    its hyperparameters and checkpoint even against a far better opponent; its child may exploit."""
    cfg = replace(config(), algorithm=replace(config().algorithm, selection=SelectionConfig()))
    weak, strong = trial(1, acc=0.1, lr=0.02), trial(2, acc=0.9)
    child = next_trial(cfg, ready(weak, strong), decision_rng(0, 9))
    assert child is not None
    assert (child.parent_trial_id, dict(child.hparams)) == (weak.id, dict(weak.hparams))
    assert child.warm_start_checkpoint_path == "/ckpt/1"
    grown = replace(weak, id=3, generation=1, lineage=child.lineage)
    exploited = next_trial(cfg, ready(grown, strong), decision_rng(0, 9))
    assert exploited is not None and exploited.parent_trial_id == strong.id
