"""Fitness tuples (paper section 3.5.1) and the two ways to compare them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from pbt_service.core.types import Comparison, Goal, Measurement, Objective, Trial, TrialStatus

Fitness = tuple[float, ...]


def fitness(measurement: Measurement | None, objectives: Sequence[Objective]) -> Fitness | None:
    """The objective values oriented so larger is better (MINIMIZE objectives are negated).

    None marks a trial that cannot compete: no measurement, a missing objective metric, or a
    diverged (NaN or infinite) value.

    Example:
        >>> fitness(Measurement(1, {"loss": 0.5}), [Objective("loss", Goal.MINIMIZE)])
        (-0.5,)
    """
    if measurement is None:
        return None
    values: list[float] = []
    for o in objectives:
        if o.metric not in measurement.metrics:
            return None
        v = float(measurement.metrics[o.metric])
        if not math.isfinite(v):
            return None
        values.append(-v if o.goal is Goal.MINIMIZE else v)
    return tuple(values)


def dominates(a: Fitness, b: Fitness) -> bool:
    """Pareto dominance: at least as good everywhere and strictly better somewhere."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(x > y for x, y in zip(a, b, strict=True))


def compare_fitness(a: Fitness | None, b: Fitness | None, comparison: Comparison) -> int:
    """1 if `a` is better, -1 if `b` is, 0 if neither; a missing fitness loses to any other."""
    if a is None or b is None:
        return (a is not None) - (b is not None)
    if comparison is Comparison.PARETO:
        return 1 if dominates(a, b) else -1 if dominates(b, a) else 0
    return (a > b) - (a < b)


def compare(a: Trial, b: Trial, objectives: Sequence[Objective], comparison: Comparison) -> int:
    """Compare two trials by their final measurements: 1 if `a` wins, -1 if `b` wins, 0 on a tie.

    A diverged trial ranks below every finite one, so NaN runs never become parents.
    """
    return compare_fitness(
        fitness(a.final_measurement, objectives), fitness(b.final_measurement, objectives), comparison
    )


def best_trials(
    trials: Iterable[Trial], objectives: Sequence[Objective], comparison: Comparison
) -> list[Trial]:
    """Completed, non-diverged trials, best first, to show users the model worth serving.

    LEXICOGRAPHIC sorts by the fitness tuple. PARETO sorts by non-dominated front (the first
    front holds the trials nobody dominates), then lexicographically within a front. Equal
    trials keep their input order.
    """
    scored = [
        (t, f)
        for t in trials
        if t.status is TrialStatus.COMPLETED and (f := fitness(t.final_measurement, objectives)) is not None
    ]
    fronts = _pareto_fronts([f for _, f in scored]) if comparison is Comparison.PARETO else [0] * len(scored)
    order = sorted(range(len(scored)), key=lambda i: (fronts[i], tuple(-x for x in scored[i][1])))
    return [scored[i][0] for i in order]


def pareto_front(trials: Iterable[Trial], objectives: Sequence[Objective]) -> list[Trial]:
    """The completed, non-diverged trials no other such trial dominates, in input order."""
    scored = [
        (t, f)
        for t in trials
        if t.status is TrialStatus.COMPLETED and (f := fitness(t.final_measurement, objectives)) is not None
    ]
    fronts = _pareto_fronts([f for _, f in scored])
    return [t for (t, _), front in zip(scored, fronts, strict=True) if front == 0]


def _pareto_fronts(points: list[Fitness]) -> list[int]:
    """Front index of each point: 0 if nothing dominates it, k if only fronts < k do."""
    front = [0] * len(points)
    remaining = set(range(len(points)))
    k = 0
    while remaining:
        current = {i for i in remaining if not any(dominates(points[j], points[i]) for j in remaining)}
        for i in current:
            front[i] = k
        remaining -= current
        k += 1
    return front
