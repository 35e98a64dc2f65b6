"""Fitness tuples, trial comparison and ranking."""

from __future__ import annotations

import math

import pytest

from pbt_service.core.fitness import best_trials, compare, fitness, pareto_front
from pbt_service.core.types import Comparison, Goal, Measurement, Objective, Trial, TrialStatus

LEX, PARETO = Comparison.LEXICOGRAPHIC, Comparison.PARETO
ACC = Objective("acc")
LOSS = Objective("loss", Goal.MINIMIZE)
A, B = Objective("a"), Objective("b")


def trial(id: int, status: TrialStatus = TrialStatus.COMPLETED, **metrics: float) -> Trial:
    final = Measurement(step=100, metrics=metrics) if metrics else None
    return Trial(
        id=id, study="s", number=id, generation=0, status=status, hparams={}, final_measurement=final
    )


# --- fitness -------------------------------------------------------------------------------------


def test_fitness_orients_every_objective_so_larger_is_better() -> None:
    m = Measurement(1, {"acc": 0.9, "loss": 0.25, "unused": 7.0})
    assert fitness(m, [ACC, LOSS]) == (0.9, -0.25)
    assert fitness(m, [LOSS, ACC]) == (-0.25, 0.9)


@pytest.mark.parametrize(
    "metrics",
    [
        {"acc": 0.9},
        {"acc": math.nan, "loss": 0.1},
        {"acc": 0.9, "loss": math.inf},
        {"acc": -math.inf, "loss": 0.1},
    ],
)
def test_fitness_is_none_for_missing_or_diverged_values(metrics: dict[str, float]) -> None:
    assert fitness(Measurement(1, metrics), [ACC, LOSS]) is None


def test_fitness_is_none_without_a_measurement() -> None:
    assert fitness(None, [ACC]) is None


# --- compare -------------------------------------------------------------------------------------


@pytest.mark.parametrize("comparison", [LEX, PARETO])
def test_single_objective_compare(comparison: Comparison) -> None:
    assert compare(trial(1, acc=0.9), trial(2, acc=0.8), [ACC], comparison) == 1
    assert compare(trial(1, acc=0.8), trial(2, acc=0.9), [ACC], comparison) == -1
    assert compare(trial(1, acc=0.8), trial(2, acc=0.8), [ACC], comparison) == 0
    assert compare(trial(1, loss=0.1), trial(2, loss=0.2), [LOSS], comparison) == 1


def test_lexicographic_decides_on_the_first_objective_and_breaks_ties_on_the_next() -> None:
    assert compare(trial(1, a=2, b=0), trial(2, a=1, b=9), [A, B], LEX) == 1
    assert compare(trial(1, a=1, b=3), trial(2, a=1, b=2), [A, B], LEX) == 1
    assert compare(trial(1, a=1, b=2), trial(2, a=1, b=3), [A, B], LEX) == -1
    assert compare(trial(1, a=1, b=2), trial(2, a=1, b=2), [A, B], LEX) == 0


def test_pareto_needs_dominance() -> None:
    assert compare(trial(1, a=2, b=2), trial(2, a=1, b=2), [A, B], PARETO) == 1
    assert compare(trial(1, a=1, b=2), trial(2, a=1, b=3), [A, B], PARETO) == -1
    assert compare(trial(1, a=2, b=0), trial(2, a=1, b=9), [A, B], PARETO) == 0
    assert compare(trial(1, a=1, b=2), trial(2, a=1, b=2), [A, B], PARETO) == 0


@pytest.mark.parametrize("comparison", [LEX, PARETO])
def test_diverged_trial_ranks_below_every_finite_one(comparison: Comparison) -> None:
    finite = trial(1, acc=-1e300)
    for diverged in (trial(2, acc=math.nan), trial(3, acc=math.inf), trial(4), trial(5, other=1.0)):
        assert compare(finite, diverged, [ACC], comparison) == 1
        assert compare(diverged, finite, [ACC], comparison) == -1
    assert compare(trial(2, acc=math.nan), trial(3), [ACC], comparison) == 0


# --- best_trials ---------------------------------------------------------------------------------


def test_best_trials_keeps_completed_finite_trials_sorted_best_first() -> None:
    trials = [
        trial(1, loss=0.3),
        trial(2, TrialStatus.ACTIVE, loss=0.01),
        trial(3, loss=0.1),
        trial(4, TrialStatus.STOPPED, loss=0.01),
        trial(5, loss=math.nan),
        trial(6, TrialStatus.FAILED, loss=0.01),
        trial(7, loss=0.2),
        trial(8),
    ]
    assert [t.id for t in best_trials(trials, [LOSS], LEX)] == [3, 7, 1]


def test_best_trials_pareto_puts_non_dominated_first() -> None:
    trials = [
        trial(1, a=1, b=1),  # dominated by 2
        trial(2, a=2, b=2),
        trial(3, a=2.5, b=-1),  # dominated by 4
        trial(4, a=3, b=0),
    ]
    assert [t.id for t in best_trials(trials, [A, B], LEX)] == [4, 3, 2, 1]
    assert [t.id for t in best_trials(trials, [A, B], PARETO)] == [4, 2, 3, 1]


def test_pareto_front_is_the_undominated_completed_trials_in_input_order() -> None:
    trials = [
        trial(1, a=1, b=1),  # dominated by 2
        trial(2, a=2, b=2),
        trial(3, a=2.5, b=-1),  # dominated by 4
        trial(4, a=3, b=0),
        trial(5, a=math.nan, b=9),  # diverged: never on the front
        trial(6, TrialStatus.ACTIVE, a=9, b=9),  # not finished
    ]
    assert [t.id for t in pareto_front(trials, [A, B])] == [2, 4]
    assert pareto_front([], [A, B]) == []


def test_best_trials_of_nothing_is_empty() -> None:
    assert best_trials([], [ACC], PARETO) == []
