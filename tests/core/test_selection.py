"""The exploit step's rules: readiness, scores, tournament, truncation and the opponent window."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbt_service.core.evolution import decision_rng, next_trial
from pbt_service.core.lineage_record import child_record
from pbt_service.core.selection import (
    ALL_GENERATIONS,
    compare_scores,
    is_ready,
    opponent_generations,
    reads_all_opponents,
    score,
    select_parent,
    tournament,
    truncation,
)
from pbt_service.core.types import (
    AlgorithmConfig,
    Comparison,
    Goal,
    LineageRecord,
    Measurement,
    Objective,
    OpponentStrategy,
    ParameterSpec,
    ParameterType,
    PopulationView,
    Scale,
    SelectionConfig,
    SelectionScore,
    SelectionStrategy,
    StudyConfig,
    Trial,
    TrialStatus,
)

LEX, PARETO = Comparison.LEXICOGRAPHIC, Comparison.PARETO
ACC = (Objective("acc"),)
AB = (Objective("a"), Objective("b"))
GREEDY = SelectionConfig(ready_generations=1)
"""Every generation may exploit (the default waits longer): tests of one rule turn the others off."""
LAST = GREEDY
SMOOTHED = replace(GREEDY, score=SelectionScore.SMOOTHED, score_window=3)
IMPROVEMENT = replace(GREEDY, score=SelectionScore.IMPROVEMENT, score_window=3)


FRESH = LineageRecord()


def trial(
    id: int,
    acc: float | None = None,
    *,
    generation: int = 0,
    step: int = 100,
    lineage: LineageRecord = FRESH,
    lr: float = 0.01,
    **metrics: float,
) -> Trial:
    """A completed trial whose final measurement is at `step` with metric `acc` (and `metrics`)."""
    values = {**({"acc": acc} if acc is not None else {}), **metrics}
    return Trial(
        id=id,
        study="s",
        number=id,
        generation=generation,
        status=TrialStatus.COMPLETED,
        hparams={"lr": lr},
        final_measurement=Measurement(step, values, f"/ckpt/{id}"),
        lineage=lineage,
    )


def history(*pairs: tuple[int, float]) -> LineageRecord:
    """A lineage whose ancestors ended at (step, acc), oldest first."""
    return LineageRecord(history=tuple((s, (a,)) for s, a in pairs))


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def truncate(
    initiator: Trial,
    opponents: list[Trial],
    quantile: float = 0.25,
    seed: int = 0,
    objectives: tuple[Objective, ...] = ACC,
    comparison: Comparison = LEX,
) -> Trial:
    sel = SelectionConfig(strategy=SelectionStrategy.TRUNCATION, truncation_quantile=quantile)
    return truncation(initiator, opponents, objectives, comparison, sel, rng(seed))


# --- readiness -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "burn_in", "ready"),
    [(99, 100, False), (100, 100, True), (500, 100, True), (0, 0, True)],
)
def test_burn_in_counts_the_global_step(step: int, burn_in: int, ready: bool) -> None:
    assert is_ready(trial(1, 0.5, step=step), replace(GREEDY, burn_in_steps=burn_in)) is ready


def test_ready_steps_count_from_the_lineages_last_exploit() -> None:
    copied_at_300 = LineageRecord(exploit_step=300, exploit_generation=3)
    sel = replace(GREEDY, ready_steps=200)
    assert not is_ready(trial(1, 0.5, generation=4, step=499, lineage=copied_at_300), sel)
    assert is_ready(trial(1, 0.5, generation=4, step=500, lineage=copied_at_300), sel)
    # burn-in is about the total, the ready interval about the time since the exploit
    assert not is_ready(trial(1, 0.5, generation=4, step=500, lineage=copied_at_300), replace(sel, burn_in_steps=501))


def test_ready_generations_count_the_initiators_own_generation() -> None:
    copied_in_3 = LineageRecord(exploit_step=300, exploit_generation=3)
    sel = SelectionConfig(ready_generations=2)
    assert not is_ready(trial(1, 0.5, generation=3, step=400, lineage=copied_in_3), sel)
    assert is_ready(trial(1, 0.5, generation=4, step=500, lineage=copied_in_3), sel)
    # with one generation, the child that copied may itself be replaced
    assert is_ready(trial(1, 0.5, generation=3, step=400, lineage=copied_in_3), GREEDY)


def test_a_fresh_lineage_counts_from_step_and_generation_zero() -> None:
    sel = SelectionConfig(ready_steps=100, ready_generations=2)
    assert not is_ready(trial(1, 0.5, generation=0, step=100), sel)  # one generation only
    assert not is_ready(trial(1, 0.5, generation=1, step=99), sel)
    assert is_ready(trial(1, 0.5, generation=1, step=100), sel)


def test_exploit_step_tracking_through_child_records() -> None:
    """A lineage copies at step 100, then continues twice: it becomes ready again 200 steps later."""
    sel = replace(GREEDY, ready_steps=200)
    top = trial(9, 0.9, generation=0, step=100)
    loser = trial(1, 0.1, generation=0, step=100)
    copied = trial(2, 0.5, generation=1, step=200, lineage=child_record(top, loser, ACC, LEX, 3))
    assert (copied.lineage.exploit_step, copied.lineage.exploit_generation) == (100, 1)
    assert not is_ready(copied, sel)
    continued = trial(3, 0.6, generation=2, step=300, lineage=child_record(copied, copied, ACC, LEX, 3))
    assert continued.lineage.exploit_step == 100
    assert is_ready(continued, sel)


# --- scores --------------------------------------------------------------------------------------


def test_last_is_the_final_measurements_fitness() -> None:
    t = trial(1, 0.7, lineage=history((10, 0.1), (20, 0.9)))
    assert score(t, ACC, LAST) == (0.7,)


def test_smoothed_is_the_mean_of_the_last_window_finals() -> None:
    t = trial(1, 0.6, step=40, lineage=history((10, 100.0), (20, 0.1), (30, 0.2)))
    [value] = score(t, ACC, SMOOTHED) or (math.nan,)
    assert value == pytest.approx((0.1 + 0.2 + 0.6) / 3)  # the oldest ancestor fell out of the window
    [short] = score(trial(1, 0.6, lineage=history((10, 0.2))), ACC, SMOOTHED) or (math.nan,)
    assert short == pytest.approx(0.4)
    assert score(trial(1, 0.6), ACC, SMOOTHED) == (0.6,)


def test_smoothed_orients_minimized_objectives() -> None:
    loss = (Objective("loss", Goal.MINIMIZE),)
    t = trial(1, step=20, lineage=LineageRecord(history=((10, (-3.0,)),)), loss=1.0)
    assert score(t, loss, SMOOTHED) == (-2.0,)


def test_improvement_is_the_gain_per_step_over_the_window() -> None:
    t = trial(1, 0.9, step=400, lineage=history((100, 5.0), (200, 0.1), (300, 0.5)))
    [rate] = score(t, ACC, IMPROVEMENT) or (math.nan,)
    assert rate == pytest.approx((0.9 - 0.1) / (400 - 200))


def test_improvement_of_a_fresh_lineage_is_undefined_and_compares_on_last() -> None:
    fresh = trial(1, 0.8, step=100)
    assert score(fresh, ACC, IMPROVEMENT) is None
    steep = trial(2, 0.5, step=200, lineage=history((100, 0.0)))  # rate 0.005 per step, last 0.5
    assert compare_scores(fresh, steep, ACC, LEX, IMPROVEMENT) == 1  # 0.8 > 0.5 on LAST
    flat = trial(3, 0.9, step=200, lineage=history((100, 0.89)))  # rate 0.0001 per step, last 0.9
    assert compare_scores(steep, flat, ACC, LEX, IMPROVEMENT) == 1  # both have a rate: it decides
    assert compare_scores(steep, flat, ACC, LEX, LAST) == -1


def test_smoothed_can_reverse_a_last_comparison() -> None:
    lucky = trial(1, 0.9, step=300, lineage=history((100, 0.1), (200, 0.1)))
    steady = trial(2, 0.8, step=300, lineage=history((100, 0.7), (200, 0.75)))
    assert compare_scores(lucky, steady, ACC, LEX, LAST) == 1
    assert compare_scores(lucky, steady, ACC, LEX, SMOOTHED) == -1


@pytest.mark.parametrize("sel", [LAST, SMOOTHED, IMPROVEMENT], ids=["last", "smoothed", "improvement"])
def test_a_diverged_trial_loses_under_every_score(sel: SelectionConfig) -> None:
    finite = trial(1, -1e9, step=200, lineage=history((100, 0.0)))
    nan = trial(2, math.nan, step=200, lineage=history((100, 0.0)))
    missing = trial(3, step=200, lineage=history((100, 0.0)))
    for diverged in (nan, missing):
        assert score(diverged, ACC, sel) is None
        assert compare_scores(finite, diverged, ACC, LEX, sel) == 1
        assert compare_scores(diverged, finite, ACC, LEX, sel) == -1
    assert compare_scores(nan, missing, ACC, LEX, sel) == 0


# --- tournament ----------------------------------------------------------------------------------


def test_a_tournament_tie_goes_to_the_initiator() -> None:
    initiator, opponent = trial(1, 0.5), trial(2, 0.5)
    assert {tournament(initiator, [opponent], ACC, LEX, LAST, rng(s)).id for s in range(20)} == {1}


def test_a_tournament_uses_the_score() -> None:
    initiator = trial(1, 0.9, step=300, lineage=history((100, 0.1), (200, 0.1)))
    opponent = trial(2, 0.8, step=300, lineage=history((100, 0.7), (200, 0.75)))
    assert tournament(initiator, [opponent], ACC, LEX, LAST, rng()) is initiator
    assert tournament(initiator, [opponent], ACC, LEX, SMOOTHED, rng()) is opponent


def test_select_parent_never_returns_a_diverged_winner() -> None:
    for strategy in SelectionStrategy:
        sel = SelectionConfig(strategy=strategy)
        assert select_parent(trial(1, math.nan), [trial(2, math.inf)], ACC, LEX, sel, rng()) is None
        finite = trial(3, 0.1)
        assert select_parent(trial(1, math.nan), [finite], ACC, LEX, sel, rng()) is finite


# --- truncation ----------------------------------------------------------------------------------


def population(size: int) -> list[Trial]:
    """Trials 1..size with acc = id: trial `size` is the best."""
    return [trial(i, float(i)) for i in range(1, size + 1)]


def test_truncation_with_two_members_the_worse_copies_the_better() -> None:
    worse, better = trial(1, 0.1), trial(2, 0.9)
    assert truncate(worse, [better]) is better
    assert truncate(better, [worse]) is better


@pytest.mark.parametrize(
    ("size", "quantile", "cut"),
    [(4, 0.25, 1), (4, 0.5, 2), (10, 0.25, 2), (10, 0.5, 5), (10, 0.1, 1), (2, 0.5, 1)],
)
def test_truncation_quantile_sizes(size: int, quantile: float, cut: int) -> None:
    members = population(size)  # rank r (0 best) is trial size - r
    for rank in range(size):
        initiator = members[size - 1 - rank]
        others = [m for m in members if m is not initiator]
        parents = {truncate(initiator, others, quantile, seed).id for seed in range(60)}
        if rank >= size - cut:
            assert parents == {size - i for i in range(cut)}, (rank, parents)  # copies from the top
        else:
            assert parents == {initiator.id}, (rank, parents)  # top and middle keep their place


def test_truncation_keeps_a_bottom_member_when_everybody_ties() -> None:
    members = [trial(i, 0.5) for i in range(1, 9)]
    assert truncate(members[0], members[1:], 0.5) is members[0]
    assert truncate(members[-1], members[:-1], 0.5) is members[-1]


def test_truncation_ties_keep_the_initiator_on_the_better_side() -> None:
    # ranks: 0.9, then four at 0.5; with a cut of 1 the initiator (tied at 0.5) is not the bottom one
    initiator = trial(1, 0.5)
    others = [trial(2, 0.9), trial(3, 0.5), trial(4, 0.5), trial(5, 0.5)]
    assert truncate(initiator, others, 0.25) is initiator


def test_truncation_uses_the_score() -> None:
    lucky = trial(1, 0.9, step=300, lineage=history((100, 0.1), (200, 0.1)))
    steady = trial(2, 0.8, step=300, lineage=history((100, 0.7), (200, 0.75)))
    sel = SelectionConfig(strategy=SelectionStrategy.TRUNCATION, score=SelectionScore.SMOOTHED)
    assert truncation(lucky, [steady], ACC, LEX, sel, rng()) is steady
    assert truncation(steady, [lucky], ACC, LEX, replace(sel, score=SelectionScore.LAST), rng()) is lucky


def test_truncation_pareto_copies_a_dominating_top_member() -> None:
    initiator = trial(1, a=0.0, b=0.0)
    dominant = [trial(i, a=float(i), b=float(i)) for i in range(2, 5)]
    assert truncate(initiator, dominant, 0.25, objectives=AB, comparison=PARETO).id == 4
    trade_offs = [trial(i, a=float(i), b=-float(i)) for i in range(2, 5)]  # nobody dominates anybody
    assert truncate(initiator, trade_offs, 0.25, objectives=AB, comparison=PARETO) is initiator


def test_truncation_pareto_copies_a_top_member_that_dominates_even_if_the_first_does_not() -> None:
    initiator = trial(1, a=0.0, b=10.0)
    x = trial(2, a=5.0, b=5.0)  # dominates w only: 1 win, does not dominate the initiator
    z = trial(3, a=1.0, b=11.0)  # dominates the initiator: 1 win
    w = trial(4, a=4.0, b=4.0)  # 0 wins
    # ranked: x, z, initiator, w; with quantile 0.5 the initiator is in the bottom two, z in the top two
    assert truncate(initiator, [x, z, w], 0.5, objectives=AB, comparison=PARETO) is z


def test_truncation_draws_uniformly_from_the_top() -> None:
    members = population(8)
    wins = Counter(truncate(members[0], members[1:], 0.5, seed).id for seed in range(2000))
    assert set(wins) == {5, 6, 7, 8}
    assert all(400 < n < 600 for n in wins.values()), wins


ACCS = st.one_of(st.floats(-10, 10), st.just(math.nan))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(ACCS, min_size=1, max_size=12),
    st.sampled_from([0.1, 0.25, 0.4, 0.5]),
    st.sampled_from(list(SelectionScore)),
    st.integers(0, 2**32 - 1),
)
def test_truncation_never_returns_a_member_worse_than_the_initiator(
    accs: list[float], quantile: float, kind: SelectionScore, seed: int
) -> None:
    members = [
        trial(i, a, step=100 * (i + 2), lineage=history((100 * (i + 1), float(i % 3)))) for i, a in enumerate(accs)
    ]
    sel = SelectionConfig(strategy=SelectionStrategy.TRUNCATION, truncation_quantile=quantile, score=kind)
    initiator, opponents = members[0], members[1:]
    winner = truncation(initiator, opponents, ACC, LEX, sel, rng(seed))
    assert winner is initiator or compare_scores(winner, initiator, ACC, LEX, sel) > 0
    better = sum(compare_scores(o, initiator, ACC, LEX, sel) > 0 for o in opponents)
    if winner is not initiator:  # only a member in the bottom quantile copies
        assert better >= len(members) - max(1, math.floor(len(members) * quantile))


# --- the opponent window -------------------------------------------------------------------------


def test_opponent_generations_by_strategy() -> None:
    def k(opponents: OpponentStrategy) -> int:
        algo = AlgorithmConfig(opponent_generations=5, selection=SelectionConfig(opponents=opponents))
        return opponent_generations(algo)

    assert k(OpponentStrategy.PAST) == 5
    assert k(OpponentStrategy.SAME) == 1
    assert k(OpponentStrategy.ANY) == ALL_GENERATIONS and ALL_GENERATIONS > 10**8


def test_only_truncation_reads_every_opponent() -> None:
    assert reads_all_opponents(AlgorithmConfig(selection=SelectionConfig(strategy=SelectionStrategy.TRUNCATION)))
    assert not reads_all_opponents(AlgorithmConfig())


# --- readiness through next_trial ----------------------------------------------------------------

LR = ParameterSpec("lr", ParameterType.FLOAT, low=1e-5, high=1.0, scale=Scale.LOG)
POP = 4


def study(sel: SelectionConfig, steps_per_trial: int = 100) -> StudyConfig:
    return StudyConfig(
        (LR,), ACC, algorithm=AlgorithmConfig(population_size=POP, steps_per_trial=steps_per_trial, selection=sel)
    )


def view(initiator: Trial, *opponents: Trial) -> PopulationView:
    return PopulationView(POP, 2 * POP, initiator, POP, opponents)


def test_a_not_ready_initiator_continues_its_own_line_unchanged() -> None:
    initiator = trial(1, 0.1, generation=0, step=100, lr=0.3)
    better = trial(2, 0.9, generation=0, step=100, lr=0.001)
    cfg = study(replace(GREEDY, burn_in_steps=200))
    for n in range(30):
        p = next_trial(cfg, view(initiator, better), decision_rng(0, n))
        assert p is not None
        assert (p.parent_trial_id, p.initiator_id, p.warm_start_checkpoint_path) == (1, 1, "/ckpt/1")
        assert p.hparams == {"lr": 0.3} and p.generation == 1 and p.steps == 100
    ready = next_trial(study(replace(GREEDY, burn_in_steps=100)), view(initiator, better), decision_rng(0, 0))
    assert ready is not None and ready.parent_trial_id == 2


def test_a_diverged_initiator_that_is_not_ready_never_continues_its_nan_line() -> None:
    cfg = study(SelectionConfig(burn_in_steps=10**6, ready_steps=10**6, ready_generations=50))
    nan = trial(1, math.nan, generation=0, step=100)
    finite = trial(2, 0.5, generation=0, step=100)
    p = next_trial(cfg, view(nan, finite), decision_rng(0, 0))
    assert p is not None and p.parent_trial_id == 2 and p.warm_start_checkpoint_path == "/ckpt/2"
    alone = next_trial(cfg, view(nan, trial(3, math.inf)), decision_rng(0, 0))
    assert alone is not None
    assert (alone.parent_trial_id, alone.warm_start_checkpoint_path, alone.initiator_id) == (None, "", 1)
