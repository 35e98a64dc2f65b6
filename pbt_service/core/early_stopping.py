"""Median stopping rule: free a worker from a trial that is already worse than typical."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pbt_service.core.types import Goal, Measurement, Objective, StudyConfig, Trial, TrialStatus


def should_stop(config: StudyConfig, trial: Trial, peers: Sequence[Trial]) -> bool:
    """Whether `trial` should stop early under the median stopping rule.

    Compares the trial's best primary-objective value so far with the median of the completed
    peers' best values up to the same step, so slow and fast trials are judged at equal
    training. Stops only when strictly worse than the median; a trial with nothing finite to
    show is worse than any peer. Needs `min_measurements` of its own and `min_completed_trials`
    peers with a finite value by then, otherwise it keeps running.

    Example:
        >>> from pbt_service.core.types import AlgorithmConfig, MedianStopping, Objective
        >>> rule = AlgorithmConfig(median_stopping=MedianStopping(enabled=True, min_completed_trials=1))
        >>> config = StudyConfig(parameters=(), objectives=(Objective("acc"),), algorithm=rule)
        >>> def run(i, status, acc):
        ...     return Trial(i, "s", i, 0, status, {}, measurements=(Measurement(10, {"acc": acc}),))
        >>> should_stop(config, run(1, TrialStatus.ACTIVE, 0.2), [run(2, TrialStatus.COMPLETED, 0.9)])
        True
    """
    rule = config.algorithm.median_stopping
    if not rule.enabled or not trial.measurements or len(trial.measurements) < rule.min_measurements:
        return False
    primary = config.objectives[0]
    step = max(m.step for m in trial.measurements)
    peer_values = [
        v
        for p in peers
        if p.status is TrialStatus.COMPLETED
        and p.id != trial.id
        and (v := _best_value(p.measurements, primary, step)) is not None
    ]
    if len(peer_values) < rule.min_completed_trials:
        return False
    own = _best_value(trial.measurements, primary, step)
    return own is None or own < float(np.median(peer_values))


def _best_value(measurements: Sequence[Measurement], objective: Objective, max_step: int) -> float | None:
    """Best finite value up to `max_step`, oriented so larger is better; None if there is none."""
    sign = -1.0 if objective.goal is Goal.MINIMIZE else 1.0
    values = [
        sign * float(m.metrics[objective.metric])
        for m in measurements
        if m.step <= max_step and objective.metric in m.metrics
    ]
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) if finite else None
