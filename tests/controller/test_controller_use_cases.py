"""Every use case of the controller on a real storage (SQLite and PostgreSQL), without gRPC."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from pbt_service.controller import Controller, ServiceSettings
from pbt_service.core.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from pbt_service.core.types import Measurement, StudyState, TrialStatus
from pbt_service.store.sql_storage import SqlStorage
from tests.controller.conftest import LEASE_SECONDS, config
from tests.fake_clock import FakeClock


def score(step: int, value: float, path: str = "") -> Measurement:
    return Measurement(step=step, metrics={"score": value}, checkpoint_path=path)


def test_create_get_and_list_studies(app: Controller) -> None:
    created = app.create_study("s1", config(population=3))
    assert created.name == "s1" and created.config.algorithm.population_size == 3
    assert app.get_study("s1").config == created.config
    app.create_study("s0", config())
    assert [s.name for s in app.list_studies().studies] == ["s0", "s1"]
    first = app.list_studies(page_size=1)
    assert [s.name for s in first.studies] == ["s0"] and first.next_after == "s0"
    last = app.list_studies(after_name="s0", page_size=1)
    assert [s.name for s in last.studies] == ["s1"] and last.next_after is None


def test_a_taken_name_and_an_invalid_config_write_nothing(app: Controller) -> None:
    app.create_study("s", config())
    with pytest.raises(AlreadyExistsError):
        app.create_study("s", config(population=5))
    assert app.get_study("s").config.algorithm.population_size == 2
    with pytest.raises(InvalidArgumentError, match="population_size"):
        app.create_study("bad", config(population=1))
    with pytest.raises(NotFoundError):
        app.get_study("bad")


def test_unknown_study_and_trial_are_not_found(app: Controller) -> None:
    with pytest.raises(NotFoundError):
        app.suggest("nope", "w")
    with pytest.raises(NotFoundError):
        app.get_trial(12345)
    with pytest.raises(NotFoundError):
        app.report(12345, "w", score(1, 0.5))
    with pytest.raises(NotFoundError):
        app.list_trials("nope")


def test_suggest_fills_generation_zero_then_waits(app: Controller) -> None:
    app.create_study("s", config(population=2))
    first = app.suggest("s", "w1", count=1)
    second = app.suggest("s", "w2", count=1)
    assert [t.generation for t in first.trials + second.trials] == [0, 0]
    waiting = app.suggest("s", "w3")
    assert waiting.trials == () and not waiting.study_done


def test_a_retried_suggestion_returns_the_trial_the_worker_holds(app: Controller) -> None:
    app.create_study("s", config(population=4))
    first = app.suggest("s", "w1", count=2)
    again = app.suggest("s", "w1", count=2)
    assert [t.id for t in again.trials] == [t.id for t in first.trials]
    assert app.get_study("s").trial_count == 2


def test_a_completed_trial_initiates_one_child(app: Controller) -> None:
    app.create_study("s", config(population=2))
    a, b = (app.suggest("s", w).trials[0] for w in ("wa", "wb"))
    for trial, value in ((a, 0.2), (b, 0.9)):
        app.report(trial.id, trial.worker_id, score(10, value, f"/ckpt/{trial.id}"))
        app.complete(trial.id, trial.worker_id)
    child = app.suggest("s", "wc").trials[0]
    assert child.generation == 1
    assert child.initiator_parent_trial_id == a.id
    assert child.parent_trial_id in (a.id, b.id)
    assert child.warm_start_checkpoint_path == f"/ckpt/{child.parent_trial_id}"
    assert app.get_trial(a.id).initiated_trial_id == child.id


def test_the_study_is_done_when_the_budget_is_spent(app: Controller) -> None:
    app.create_study("s", config(population=2, max_generations=1))
    for worker in ("w1", "w2"):
        trial = app.suggest("s", worker).trials[0]
        app.report(trial.id, worker, score(1, 0.5))
        app.complete(trial.id, worker)
    done = app.suggest("s", "w3")
    assert done.study_done and done.trials == ()
    assert app.get_study("s").state is StudyState.DONE


def test_a_repeated_report_changes_nothing(app: Controller) -> None:
    app.create_study("s", config())
    trial = app.suggest("s", "w").trials[0]
    assert app.report(trial.id, "w", score(5, 0.5)) is False
    assert app.report(trial.id, "w", score(5, 0.5)) is False
    assert [m.step for m in app.get_trial(trial.id).measurements] == [5]


def test_a_report_must_carry_every_objective_and_come_from_the_holder(app: Controller) -> None:
    app.create_study("s", config())
    trial = app.suggest("s", "w").trials[0]
    with pytest.raises(InvalidArgumentError, match="score"):
        app.report(trial.id, "w", Measurement(step=1, metrics={"loss": 1.0}))
    with pytest.raises(FailedPreconditionError, match="held by worker"):
        app.report(trial.id, "intruder", score(1, 0.5))
    assert app.get_trial(trial.id).measurements == ()


def test_nan_is_accepted_as_divergence(app: Controller) -> None:
    app.create_study("s", config())
    trial = app.suggest("s", "w").trials[0]
    app.report(trial.id, "w", score(1, math.nan))
    assert math.isnan(app.get_trial(trial.id).measurements[0].metrics["score"])


def test_completion_is_idempotent_and_needs_a_measurement(app: Controller) -> None:
    app.create_study("s", config())
    trial = app.suggest("s", "w").trials[0]
    with pytest.raises(FailedPreconditionError, match="no measurements"):
        app.complete(trial.id, "w")
    app.report(trial.id, "w", score(3, 0.7))
    done = app.complete(trial.id, "w", score(3, 0.7))
    again = app.complete(trial.id, "w", score(3, 0.7))
    assert done.status is again.status is TrialStatus.COMPLETED
    assert again.final_measurement is not None and again.final_measurement.step == 3
    with pytest.raises(FailedPreconditionError):
        app.complete(trial.id, "w", score(4, 0.1))


def test_a_failure_hands_the_reproduction_back_and_repeats_cleanly(app: Controller) -> None:
    app.create_study("s", config())
    trial = app.suggest("s", "w").trials[0]
    failed = app.complete(trial.id, "w", failure_reason="out of memory")
    assert failed.status is TrialStatus.FAILED and failed.status_message == "out of memory"
    assert app.complete(trial.id, "w", failure_reason="out of memory").status is TrialStatus.FAILED


def test_stop_trial_rules(app: Controller) -> None:
    app.create_study("s", config())
    trial = app.suggest("s", "w").trials[0]
    with pytest.raises(FailedPreconditionError, match="held by worker"):
        app.stop_trial(trial.id, worker="other")
    stopped = app.stop_trial(trial.id, reason="user said so")
    assert stopped.status is TrialStatus.STOPPED and stopped.status_message == "user said so"
    assert app.stop_trial(trial.id).status is TrialStatus.STOPPED
    other = app.suggest("s", "w2").trials[0]
    app.report(other.id, "w2", score(1, 0.1))
    app.complete(other.id, "w2")
    with pytest.raises(FailedPreconditionError, match="cannot be stopped"):
        app.stop_trial(other.id)


def test_heartbeats_hold_the_lease_and_silence_loses_it(app: Controller, clock: FakeClock) -> None:
    app.create_study("s", config())
    trial = app.suggest("s", "w").trials[0]
    for _ in range(3):
        clock.advance(LEASE_SECONDS * 0.9)
        assert app.heartbeat(trial.id, "w") is False
    clock.advance(LEASE_SECONDS + 1)
    with pytest.raises(FailedPreconditionError, match="lease expired"):
        app.report(trial.id, "w", score(1, 0.5))
    lapsed = app.get_trial(trial.id)
    assert lapsed.status is TrialStatus.STOPPED and lapsed.measurements == ()
    with pytest.raises(FailedPreconditionError):
        app.heartbeat(trial.id, "w")


def test_a_suggestion_stops_lapsed_trials_and_reuses_their_slot(app: Controller, clock: FakeClock) -> None:
    app.create_study("s", config(population=2))
    a, b = (app.suggest("s", w).trials[0] for w in ("wa", "wb"))
    for trial in (a, b):
        app.report(trial.id, trial.worker_id, score(1, 0.5))
        app.complete(trial.id, trial.worker_id)
    child = app.suggest("s", "wc").trials[0]
    clock.advance(LEASE_SECONDS + 1)
    replacement = app.suggest("s", "wd").trials[0]
    assert app.get_trial(child.id).status is TrialStatus.STOPPED
    assert replacement.initiator_parent_trial_id == child.initiator_parent_trial_id
    assert replacement.generation == 1


def test_early_stopping_marks_trials_below_the_median(app: Controller) -> None:
    app.create_study("s", config(population=4, median_stopping=_median()))
    trials = [app.suggest("s", f"w{i}").trials[0] for i in range(4)]
    for i, trial in enumerate(trials[:3]):
        app.report(trial.id, trial.worker_id, score(1, 0.8 + i / 100))
        app.complete(trial.id, trial.worker_id)
    slow = trials[3]
    assert app.report(slow.id, slow.worker_id, score(1, 0.1)) is True
    assert [t.id for t in app.early_stopping_trials("s")] == [slow.id]
    assert app.heartbeat(slow.id, slow.worker_id) is True


def _median() -> object:
    from pbt_service.core.types import MedianStopping

    return MedianStopping(enabled=True, min_completed_trials=3, min_measurements=1)


def test_list_trials_pages_in_number_order(app: Controller) -> None:
    app.create_study("s", config(population=5))
    ids = [t.id for t in app.suggest("s", "w", count=5).trials]
    first = app.list_trials("s", page_size=2)
    assert [t.id for t in first.trials] == ids[:2] and first.next_after == first.trials[-1].number
    rest = app.list_trials("s", after_number=first.next_after or 0, page_size=10)
    assert [t.id for t in rest.trials] == ids[2:] and rest.next_after is None
    assert app.list_trials("s", statuses=[TrialStatus.COMPLETED]).trials == ()
    assert len(app.list_trials("s", generation=0, with_measurements=False).trials) == 5


def test_a_final_measurement_conflicting_with_a_reported_step_is_refused(app: Controller) -> None:
    app.create_study("s", config(population=2))
    (trial,) = app.suggest("s", "w").trials
    app.report(trial.id, "w", score(3, 0.5, "/c/3"))
    for conflicting in (score(3, 0.9, "/c/3"), score(3, 0.5, "/elsewhere")):
        with pytest.raises(FailedPreconditionError, match="step 3"):
            app.complete(trial.id, "w", conflicting)
    ended = app.get_trial(trial.id)
    assert ended.status is TrialStatus.ACTIVE
    assert [(m.step, dict(m.metrics), m.checkpoint_path) for m in ended.measurements] == [(3, {"score": 0.5}, "/c/3")]
    done = app.complete(trial.id, "w", score(3, 0.5))  # the recorded one (path left empty)
    assert done.status is TrialStatus.COMPLETED and done.final_measurement is not None
    assert done.final_measurement.checkpoint_path == "/c/3"
    again = app.complete(trial.id, "w", score(3, 0.5))  # an identical retry: the same answer
    assert again.final_measurement == done.final_measurement and again.status is TrialStatus.COMPLETED
    with pytest.raises(FailedPreconditionError):
        app.complete(trial.id, "w", score(3, 0.9))


def test_a_child_is_never_created_before_its_parent_ended(storage: SqlStorage) -> None:
    """The clock is read once for the lease check before the study lock, and again (later) for
    each trial created: a child decided from a parent that ended meanwhile gets the later time."""
    times = iter([10.0, 11.0, 12.0, 13.0])
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    now = {"t": 0.0}

    def clock() -> datetime:
        return start + timedelta(seconds=now["t"])

    app = Controller(storage, ServiceSettings(lease_seconds=LEASE_SECONDS), clock)
    app.create_study("s", config(population=2))
    for worker in ("a", "b"):
        now["t"] = next(times)
        (trial,) = app.suggest("s", worker).trials
        now["t"] = next(times)
        app.report(trial.id, worker, score(1, 1.0))
    ends = []
    for trial in app.list_trials("s").trials:
        now["t"] = 30.0
        ends.append(app.complete(trial.id, trial.worker_id).end_time)
    calls = iter([20.0])  # the first read predates the parents' end (a slow lock); later ones do not

    def racing() -> datetime:
        return start + timedelta(seconds=next(calls, 40.0))

    racing_app = Controller(storage, ServiceSettings(lease_seconds=LEASE_SECONDS), racing)
    (child,) = racing_app.suggest("s", "c").trials
    assert child.create_time is not None and all(end is not None and child.create_time >= end for end in ends)
