"""Median stopping rule."""

from __future__ import annotations

import math

from pbt_service.core.early_stopping import should_stop
from pbt_service.core.types import (
    AlgorithmConfig,
    Goal,
    Measurement,
    MedianStopping,
    Objective,
    StudyConfig,
    Trial,
    TrialStatus,
)

ACC = Objective("acc")


def config(
    enabled: bool = True, peers: int = 3, measurements: int = 1, objectives: tuple[Objective, ...] = (ACC,)
) -> StudyConfig:
    rule = MedianStopping(enabled=enabled, min_completed_trials=peers, min_measurements=measurements)
    return StudyConfig(parameters=(), objectives=objectives, algorithm=AlgorithmConfig(median_stopping=rule))


def trial(
    id: int, *curve: tuple[int, float], status: TrialStatus = TrialStatus.COMPLETED, metric: str = "acc"
) -> Trial:
    measurements = tuple(Measurement(step, {metric: v}) for step, v in curve)
    return Trial(
        id=id, study="s", number=id, generation=0, status=status, hparams={}, measurements=measurements
    )


def active(*curve: tuple[int, float]) -> Trial:
    return trial(0, *curve, status=TrialStatus.ACTIVE)


PEERS = [trial(1, (10, 0.4)), trial(2, (10, 0.5)), trial(3, (10, 0.6))]


def test_stops_only_when_strictly_worse_than_the_median() -> None:
    assert should_stop(config(), active((10, 0.45)), PEERS)
    assert not should_stop(config(), active((10, 0.5)), PEERS)
    assert not should_stop(config(), active((10, 0.55)), PEERS)


def test_median_of_an_even_number_of_peers_is_the_midpoint() -> None:
    peers = [*PEERS, trial(4, (10, 0.7))]
    assert should_stop(config(), active((10, 0.54)), peers)
    assert not should_stop(config(), active((10, 0.55)), peers)


def test_minimize_objectives_stop_the_higher_values() -> None:
    cfg = config(objectives=(Objective("acc", Goal.MINIMIZE),))
    assert should_stop(cfg, active((10, 0.55)), PEERS)
    assert not should_stop(cfg, active((10, 0.45)), PEERS)


def test_disabled_rule_never_stops() -> None:
    assert not should_stop(config(enabled=False), active((10, 0.0)), PEERS)


def test_needs_min_measurements_from_the_trial() -> None:
    assert not should_stop(config(measurements=2), active((10, 0.0)), PEERS)
    assert should_stop(config(measurements=2), active((5, 0.0), (10, 0.0)), PEERS)
    assert not should_stop(config(), active(), PEERS)


def test_needs_min_completed_trials_peers() -> None:
    assert not should_stop(config(peers=4), active((10, 0.0)), PEERS)


def test_only_completed_peers_count_and_never_the_trial_itself() -> None:
    others = [
        trial(i, (10, 0.9), status=s)
        for i, s in [(4, TrialStatus.ACTIVE), (5, TrialStatus.STOPPED), (6, TrialStatus.FAILED)]
    ]
    itself = trial(0, (10, 0.9))
    assert not should_stop(config(peers=2), active((10, 0.0)), [*others, itself, trial(1, (10, 0.9))])
    assert should_stop(config(peers=1), active((10, 0.0)), [*others, itself, trial(1, (10, 0.9))])


def test_peers_are_judged_at_the_trials_step() -> None:
    peers = [trial(i, (10, 0.3), (100, 0.99)) for i in (1, 2, 3)]
    assert not should_stop(config(), active((5, 0.0), (10, 0.4)), peers)
    assert should_stop(config(), active((5, 0.0), (100, 0.4)), peers)


def test_peers_without_a_finite_value_by_that_step_do_not_count() -> None:
    late = [trial(i, (50, 0.9)) for i in (1, 2, 3)]
    assert not should_stop(config(), active((10, 0.0)), late)
    diverged = [trial(i, (10, math.nan)) for i in (1, 2, 3)]
    assert not should_stop(config(), active((10, 0.0)), diverged)
    assert should_stop(config(), active((10, 0.0)), [*diverged, *PEERS])


def test_the_trial_is_judged_by_its_best_value_so_far() -> None:
    assert not should_stop(config(), active((5, 0.8), (10, 0.1)), PEERS)


def test_peers_are_judged_by_their_best_value_so_far() -> None:
    peers = [trial(i, (5, 0.9), (10, 0.1)) for i in (1, 2, 3)]
    assert should_stop(config(), active((10, 0.5)), peers)


def test_a_trial_with_nothing_finite_is_worse_than_anything() -> None:
    assert should_stop(config(), active((10, math.nan), (20, math.inf)), PEERS)
    assert should_stop(config(), trial(0, (10, 1.0), status=TrialStatus.ACTIVE, metric="other"), PEERS)
    assert not should_stop(config(peers=4), active((10, math.nan)), PEERS)


def test_non_finite_values_are_skipped_not_best() -> None:
    assert should_stop(config(), active((5, math.inf), (10, 0.1)), PEERS)


def test_only_the_primary_objective_matters() -> None:
    cfg = config(objectives=(ACC, Objective("speed")))
    assert should_stop(cfg, active((10, 0.45)), PEERS)
