"""The storage contract, run on SQLite in memory, SQLite in a file and PostgreSQL (fixture `storage`)."""

from __future__ import annotations

import math
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from pbt_service.core.types import (
    Goal,
    Measurement,
    Objective,
    ParamValue,
    StudyConfig,
    StudyState,
    TrialProposal,
    TrialStatus,
)
from pbt_service.store import schema
from pbt_service.store.base import Transaction, TrialState, iterate_all_trials
from pbt_service.store.engine import StorageSettings
from pbt_service.store.errors import AlreadyExistsError, NotFoundError, TrialStateError, UnavailableError
from pbt_service.store.sql_storage import SqlStorage, TransientDatabaseError
from tests.store.store_driver import CONFIG, FULL_CONFIG, METRIC, NOW, StoreDriver


class TestStudies:
    def test_create_get_round_trip(self, storage: SqlStorage) -> None:
        created = storage.run(lambda tx: tx.create_study("s", FULL_CONFIG, NOW))
        loaded = storage.run(lambda tx: tx.get_study("s", lock=True))
        assert created == loaded
        assert loaded.config == FULL_CONFIG
        assert loaded.state is StudyState.ACTIVE
        assert loaded.trial_count == 0
        assert loaded.create_time == NOW and loaded.create_time.tzinfo == timezone.utc

    def test_times_come_back_as_utc(self, storage: SqlStorage) -> None:
        local = datetime(2025, 6, 1, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
        storage.run(lambda tx: tx.create_study("s", CONFIG, local))
        loaded = storage.run(lambda tx: tx.get_study("s"))
        assert loaded.create_time == local
        assert loaded.create_time is not None and loaded.create_time.utcoffset() == timedelta(0)
        assert loaded.create_time.hour == 12 and loaded.create_time.microsecond == 123456

    def test_naive_time_is_rejected(self, storage: SqlStorage) -> None:
        with pytest.raises(ValueError, match="no timezone"):
            storage.run(lambda tx: tx.create_study("s", CONFIG, datetime(2025, 1, 1)))

    def test_list_by_name(self, driver: StoreDriver) -> None:
        for name in ("b", "c", "a"):
            driver.study(name)
        assert [s.name for s in driver.storage.run(lambda tx: tx.list_studies())] == ["a", "b", "c"]

    def test_duplicate_name(self, driver: StoreDriver) -> None:
        driver.study("s")
        other = StudyConfig(parameters=(), objectives=(Objective("loss", Goal.MINIMIZE),))
        with pytest.raises(AlreadyExistsError, match="'s'"):
            driver.storage.run(lambda tx: tx.create_study("s", other, NOW))
        assert driver.storage.run(lambda tx: tx.get_study("s")).config == CONFIG

    def test_set_state(self, driver: StoreDriver) -> None:
        driver.study("s")
        driver.storage.run(lambda tx: tx.set_study_state("s", StudyState.DONE))
        assert driver.storage.run(lambda tx: tx.get_study("s")).state is StudyState.DONE

    def test_unknown_study(self, driver: StoreDriver) -> None:
        calls = [
            lambda tx: tx.get_study("nope"),
            lambda tx: tx.get_study("nope", lock=True),
            lambda tx: tx.set_study_state("nope", StudyState.DONE),
            lambda tx: tx.population_view("nope", CONFIG),
            lambda tx: tx.create_trial("nope", TrialProposal(0, {}), "w", NOW),
            lambda tx: tx.active_trials("nope"),
            lambda tx: tx.completed_trials("nope", 0, 5),
            lambda tx: tx.expire_leases("nope", NOW, NOW),
            lambda tx: tx.list_trials("nope"),
        ]
        for call in calls:
            with pytest.raises(NotFoundError, match="nope"):
                driver.storage.run(call)


class TestTrials:
    def test_numbers_per_study(self, driver: StoreDriver) -> None:
        driver.study("a")
        driver.study("b")
        trials = [driver.trial(name) for name in ("a", "b", "a", "a", "b")]
        assert [t.number for t in trials] == [1, 1, 2, 3, 2]
        assert len({t.id for t in trials}) == 5
        assert driver.storage.run(lambda tx: tx.get_study("a")).trial_count == 3

    def test_fields(self, driver: StoreDriver) -> None:
        driver.study()
        parent = driver.trial()
        driver.complete(parent.id)
        child = driver.trial(generation=1, parent=parent.id, initiator=parent.id, worker="w9")
        loaded = driver.get(child.id)
        assert loaded == child
        assert (loaded.study, loaded.generation, loaded.status) == ("study", 1, TrialStatus.ACTIVE)
        assert loaded.worker_id == "w9"
        assert loaded.parent_trial_id == parent.id and loaded.initiator_parent_trial_id == parent.id
        assert loaded.warm_start_checkpoint_path == f"/ckpt/{parent.id}"
        assert loaded.create_time == loaded.heartbeat_time == NOW
        assert loaded.end_time is None and loaded.final_measurement is None and not loaded.stop_requested
        assert driver.get(parent.id).initiated_trial_id == child.id

    def test_params_keep_their_types(self, driver: StoreDriver) -> None:
        driver.study()
        hparams: dict[str, ParamValue] = {
            "lr": 0.1,
            "whole_float": 1.0,
            "tiny": 1e-300,
            "layers": 3,
            "big": 2**40,
            "neg": -7,
            "opt": "adam",
        }
        trial = driver.trial(hparams=dict(hparams))
        loaded = driver.get(trial.id).hparams
        assert loaded == hparams
        assert {k: type(v) for k, v in loaded.items()} == {k: type(v) for k, v in hparams.items()}

    @pytest.mark.parametrize("bad", [True, math.nan, math.inf, None])
    def test_bad_param_writes_nothing(self, driver: StoreDriver, bad: object) -> None:
        driver.study()
        with pytest.raises(ValueError, match="hyperparameter 'x'"):
            driver.trial(hparams={"ok": 1, "x": bad})  # type: ignore[dict-item]
        assert driver.storage.run(lambda tx: tx.get_study("study")).trial_count == 0
        assert driver.storage.run(lambda tx: tx.list_trials("study")) == []

    def test_unknown_trial(self, driver: StoreDriver) -> None:
        driver.study()
        measurement = Measurement(1, {METRIC: 1.0})
        calls = [
            lambda tx: tx.get_trial(999),
            lambda tx: tx.get_trial(999, lock=True),
            lambda tx: tx.heartbeat(999, NOW),
            lambda tx: tx.add_measurement(999, measurement, NOW),
            lambda tx: tx.finish_trial(999, TrialStatus.COMPLETED, measurement, "", NOW),
            lambda tx: tx.create_trial("study", TrialProposal(1, {}, initiator_id=999), "w", NOW),
        ]
        for call in calls:
            with pytest.raises(NotFoundError, match="999"):
                driver.storage.run(call)

    def test_initiator_must_be_free(self, driver: StoreDriver) -> None:
        driver.study()
        first, running = driver.trial(), driver.trial()
        driver.complete(first.id)
        driver.trial(generation=1, initiator=first.id)
        with pytest.raises(ValueError, match="cannot initiate"):
            driver.trial(generation=1, initiator=first.id)
        with pytest.raises(ValueError, match="cannot initiate"):
            driver.trial(generation=1, initiator=running.id)
        assert driver.storage.run(lambda tx: tx.get_study("study")).trial_count == 3

    def test_heartbeat_and_stop_requests(self, driver: StoreDriver) -> None:
        driver.study()
        a, b = driver.trial(), driver.trial()
        later = NOW + timedelta(minutes=5)
        driver.storage.run(lambda tx: tx.heartbeat(a.id, later))
        driver.storage.run(lambda tx: tx.request_stop([b.id, b.id, 12345]))
        assert driver.get(a.id).heartbeat_time == later
        assert (driver.get(a.id).stop_requested, driver.get(b.id).stop_requested) == (False, True)


class TestMeasurements:
    def test_nan_and_inf_round_trip(self, driver: StoreDriver) -> None:
        driver.study()
        trial = driver.trial()
        metrics = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "zero": 0.0, "tiny": 5e-324, "x": 0.1}
        stamp = datetime(2025, 1, 1, 12, 30, tzinfo=timezone.utc)
        measurement = Measurement(7, metrics, checkpoint_path="/c/7", elapsed_seconds=1.5, create_time=stamp)
        assert driver.storage.run(lambda tx: tx.add_measurement(trial.id, measurement, NOW))
        (loaded,) = driver.get(trial.id).measurements
        assert math.isnan(loaded.metrics["nan"])
        assert {k: v for k, v in loaded.metrics.items() if k != "nan"} == {
            k: v for k, v in metrics.items() if k != "nan"
        }
        # The time is the service's (`now`), never the one the caller sent.
        assert (loaded.step, loaded.checkpoint_path, loaded.elapsed_seconds, loaded.create_time) == (
            7,
            "/c/7",
            1.5,
            NOW,
        )
        assert not loaded.is_finite(("nan",)) and loaded.is_finite(("x",))

    def test_duplicate_step_changes_nothing(self, driver: StoreDriver) -> None:
        driver.study()
        trial = driver.trial()
        assert driver.measure(trial.id, 1, 0.3, at=NOW + timedelta(seconds=1))
        assert not driver.measure(trial.id, 1, 0.9, at=NOW + timedelta(seconds=2))
        loaded = driver.get(trial.id)
        assert [m.metrics[METRIC] for m in loaded.measurements] == [0.3]

    def test_sorted_by_step_and_lease_left_to_the_caller(self, driver: StoreDriver) -> None:
        driver.study()
        trial = driver.trial()
        for i, step in enumerate((30, 10, 20)):
            driver.measure(trial.id, step, step / 100, at=NOW + timedelta(seconds=i + 1))
        loaded = driver.get(trial.id)
        assert [m.step for m in loaded.measurements] == [10, 20, 30]
        assert loaded.heartbeat_time == NOW

    def test_concurrent_same_step_records_once(self, driver: StoreDriver) -> None:
        driver.study()
        trial = driver.trial()
        results: list[bool] = []
        threads = [
            threading.Thread(target=lambda v=v: results.append(driver.measure(trial.id, 5, v)))
            for v in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == [False] * 5 + [True]
        assert len(driver.get(trial.id).measurements) == 1


class TestFinish:
    def test_completed_picks_largest_step(self, driver: StoreDriver) -> None:
        driver.study()
        trial = driver.trial()
        for step in (3, 1, 2):
            driver.measure(trial.id, step, step / 10)
        done = driver.finish(trial.id, TrialStatus.COMPLETED, "ok")
        assert done.status is TrialStatus.COMPLETED and done.status_message == "ok"
        assert done.final_measurement is not None and done.final_measurement.step == 3
        assert done.end_time == NOW + timedelta(hours=1)
        assert done == driver.get(trial.id)

    def test_completed_with_existing_step_uses_stored_row(self, driver: StoreDriver) -> None:
        driver.study()
        trial = driver.trial()
        driver.measure(trial.id, 1, 0.1)
        driver.measure(trial.id, 2, 0.2)
        done = driver.finish(trial.id, TrialStatus.COMPLETED, final=Measurement(1, {METRIC: 0.99}))
        assert done.final_measurement is not None
        assert (done.final_measurement.step, done.final_measurement.metrics[METRIC]) == (1, 0.1)
        assert len(done.measurements) == 2

    def test_completed_with_new_measurement_adds_it(self, driver: StoreDriver) -> None:
        driver.study()
        trial = driver.trial()
        driver.measure(trial.id, 1, 0.1)
        done = driver.finish(trial.id, TrialStatus.COMPLETED, final=Measurement(9, {METRIC: 0.9}, "/c/9"))
        assert done.final_measurement == done.measurements[-1]
        assert (done.final_measurement.step, done.final_measurement.checkpoint_path) == (9, "/c/9")

    def test_completed_without_measurements_is_rejected(self, driver: StoreDriver) -> None:
        driver.study()
        trial = driver.trial()
        with pytest.raises(TrialStateError, match="no measurement"):
            driver.finish(trial.id, TrialStatus.COMPLETED)
        assert driver.get(trial.id).status is TrialStatus.ACTIVE

    def test_only_active_trials_end(self, driver: StoreDriver) -> None:
        driver.study()
        trial = driver.trial()
        with pytest.raises(ValueError, match="ACTIVE"):
            driver.finish(trial.id, TrialStatus.ACTIVE)
        driver.finish(trial.id, TrialStatus.FAILED, "boom")
        with pytest.raises(TrialStateError, match="not active"):
            driver.finish(trial.id, TrialStatus.STOPPED)
        loaded = driver.get(trial.id)
        assert (loaded.status, loaded.status_message, loaded.final_measurement) == (
            TrialStatus.FAILED,
            "boom",
            None,
        )

    @pytest.mark.parametrize("status", [TrialStatus.STOPPED, TrialStatus.FAILED])
    def test_stopped_or_failed_hands_reproduction_back(
        self, driver: StoreDriver, status: TrialStatus
    ) -> None:
        driver.study()
        initiator = driver.trial()
        driver.complete(initiator.id)
        child = driver.trial(generation=1, initiator=initiator.id, parent=initiator.id)
        assert driver.get(initiator.id).initiated_trial_id == child.id
        driver.finish(child.id, status)
        assert driver.get(initiator.id).initiated_trial_id is None
        again = driver.trial(generation=1, initiator=initiator.id)
        assert driver.get(initiator.id).initiated_trial_id == again.id

    def test_completed_child_keeps_reproduction(self, driver: StoreDriver) -> None:
        driver.study()
        initiator = driver.trial()
        driver.complete(initiator.id)
        child = driver.trial(generation=1, initiator=initiator.id)
        driver.complete(child.id)
        assert driver.get(initiator.id).initiated_trial_id == child.id


class TestLeases:
    def test_expire_stops_stale_trials_and_hands_back(self, driver: StoreDriver) -> None:
        driver.study()
        driver.study("other")
        initiator = driver.trial()
        driver.complete(initiator.id)
        stale_child = driver.trial(generation=1, initiator=initiator.id)
        fresh = driver.trial()
        renewed = driver.trial()
        other = driver.trial("other")
        driver.storage.run(lambda tx: tx.heartbeat(fresh.id, NOW + timedelta(minutes=10)))
        driver.storage.run(lambda tx: tx.renew_lease(renewed.id, "w0", NOW, NOW + timedelta(minutes=10)))
        cutoff, now = NOW + timedelta(minutes=5), NOW + timedelta(minutes=15)
        expired = driver.storage.run(lambda tx: tx.expire_leases("study", cutoff, now))
        assert expired == [stale_child.id]
        loaded = driver.get(stale_child.id)
        assert (loaded.status, loaded.status_message, loaded.end_time) == (
            TrialStatus.STOPPED,
            "lease expired",
            now,
        )
        assert driver.get(initiator.id).initiated_trial_id is None
        assert driver.get(initiator.id).status is TrialStatus.COMPLETED
        assert {driver.get(t.id).status for t in (fresh, renewed, other)} == {TrialStatus.ACTIVE}
        assert driver.storage.run(lambda tx: tx.expire_leases("study", cutoff, now)) == []


    def test_renew_lease_only_for_the_holder_of_a_live_lease(self, driver: StoreDriver) -> None:
        driver.study()
        held, ended = driver.trial(worker="w1"), driver.trial(worker="w1")
        driver.finish(ended.id, TrialStatus.FAILED, "boom")
        later = NOW + timedelta(minutes=1)

        def renew(trial_id: int, worker: str, valid_after: datetime) -> object:
            return driver.storage.run(lambda tx: tx.renew_lease(trial_id, worker, valid_after, later))

        assert renew(held.id, "w2", NOW) is None
        assert renew(ended.id, "w1", NOW) is None
        assert renew(held.id, "w1", NOW + timedelta(seconds=1)) is None  # lapsed
        assert driver.get(held.id).heartbeat_time == NOW
        state = renew(held.id, "w1", NOW)
        assert isinstance(state, TrialState)
        assert (state.id, state.study, state.status, state.worker_id) == (held.id, "study", TrialStatus.ACTIVE, "w1")
        assert state.config == driver.config and state.heartbeat_time == later
        assert driver.get(held.id).heartbeat_time == later
        assert driver.storage.run(lambda tx: tx.lock_trial(held.id)) == state


class TestQueries:
    def test_active_and_completed(self, driver: StoreDriver) -> None:
        driver.study()
        a, b, c, d = (
            driver.trial(worker=w, generation=g) for w, g in (("w1", 0), ("w2", 0), ("w1", 1), ("w1", 2))
        )
        driver.measure(c.id, 1, 0.5)
        driver.complete(b.id)
        driver.complete(d.id)
        active = driver.storage.run(lambda tx: tx.active_trials("study"))
        assert [t.id for t in active] == [a.id, c.id]
        assert [len(t.measurements) for t in active] == [0, 1]
        assert [t.id for t in driver.storage.run(lambda tx: tx.active_trials("study", "w1"))] == [a.id, c.id]
        assert driver.storage.run(lambda tx: tx.active_trials("study", "w3")) == []
        completed = driver.storage.run(lambda tx: tx.completed_trials("study", 1, 2))
        assert [t.id for t in completed] == [d.id] and len(completed[0].measurements) == 1
        assert [t.id for t in driver.storage.run(lambda tx: tx.completed_trials("study", 0, 5))] == [
            b.id,
            d.id,
        ]

    def test_list_filters_and_paging(self, driver: StoreDriver) -> None:
        driver.study()
        driver.study("other")
        trials = [driver.trial(generation=i % 3) for i in range(10)]
        driver.trial("other")
        for trial in trials[:6]:
            driver.measure(trial.id, 1, 0.1)
            driver.measure(trial.id, 2, 0.2)
            driver.finish(trial.id, TrialStatus.COMPLETED if trial.number % 2 else TrialStatus.STOPPED)

        def numbers(**kwargs: object) -> list[int]:
            return [t.number for t in driver.storage.run(lambda tx: tx.list_trials("study", **kwargs))]  # type: ignore[arg-type]

        assert numbers() == list(range(1, 11))
        assert numbers(statuses=[TrialStatus.COMPLETED]) == [1, 3, 5]
        assert numbers(statuses=[TrialStatus.STOPPED, TrialStatus.ACTIVE]) == [2, 4, 6, 7, 8, 9, 10]
        assert numbers(generation=1) == [2, 5, 8]
        assert numbers(generation=1, statuses=[TrialStatus.ACTIVE]) == [8]
        assert numbers(after_number=3, limit=4) == [4, 5, 6, 7]
        assert numbers(after_number=10) == [] and numbers(limit=0) == []
        light = driver.storage.run(lambda tx: tx.list_trials("study", limit=1, with_measurements=False))[0]
        assert (
            light.measurements == ()
            and light.final_measurement is not None
            and light.final_measurement.step == 2
        )
        full = driver.storage.run(lambda tx: tx.list_trials("study", limit=1))[0]
        assert [m.step for m in full.measurements] == [1, 2] and full.final_measurement == full.measurements[
            -1
        ]
        assert [t.number for t in iterate_all_trials(driver.storage, "study", page=3)] == list(range(1, 11))


class TestTransactions:
    def test_exception_rolls_everything_back(self, driver: StoreDriver) -> None:
        driver.study()

        def work(tx: Transaction) -> None:
            tx.create_study("s2", CONFIG, NOW)
            tx.create_trial("study", TrialProposal(0, {"x": 1}), "w", NOW)
            raise RuntimeError("crash")

        with pytest.raises(RuntimeError, match="crash"):
            driver.storage.run(work)
        with pytest.raises(RuntimeError, match="crash"), driver.storage.transaction() as tx:
            work(tx)
        assert [s.name for s in driver.storage.run(lambda tx: tx.list_studies())] == ["study"]
        assert driver.storage.run(lambda tx: tx.get_study("study")).trial_count == 0
        assert driver.storage.run(lambda tx: tx.list_trials("study")) == []

    def test_transient_errors_are_retried(self, storage_url: str) -> None:
        storage = SqlStorage.from_url(storage_url, StorageSettings(retry_base_delay_s=0.001))
        attempts: list[int] = []

        def flaky(tx: Transaction) -> str:
            attempts.append(1)
            tx.create_study(f"s{len(attempts)}", CONFIG, NOW)
            if len(attempts) < 3:
                raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))
            return "done"

        try:
            assert storage.run(flaky) == "done"
            assert [s.name for s in storage.run(lambda tx: tx.list_studies())] == ["s3"]
        finally:
            storage.close()

    def test_persistent_errors_become_unavailable(self, storage_url: str) -> None:
        storage = SqlStorage.from_url(storage_url, StorageSettings(max_attempts=3, retry_base_delay_s=0.001))
        attempts: list[int] = []

        def broken(tx: Transaction) -> None:
            attempts.append(1)
            raise OperationalError("SELECT 1", {}, Exception("deadlock detected"))

        try:
            with pytest.raises(UnavailableError, match="after 3 attempt") as caught:
                storage.run(broken)
            assert len(attempts) == 3
            assert not isinstance(caught.value, TransientDatabaseError)
            assert isinstance(caught.value.__cause__, OperationalError)
        finally:
            storage.close()

    def test_other_database_errors_propagate_unretried(self, driver: StoreDriver) -> None:
        driver.study()
        attempts: list[int] = []

        def duplicate(tx: Transaction) -> None:
            attempts.append(1)
            tx.create_trial("study", TrialProposal(0, {}), "w", NOW)
            connection = tx._db  # type: ignore[attr-defined]
            connection.execute(text("UPDATE studies SET trial_count = 0"))
            tx.create_trial("study", TrialProposal(0, {}), "w", NOW)

        with pytest.raises(IntegrityError):
            driver.storage.run(duplicate)
        assert attempts == [1]
        assert driver.storage.run(lambda tx: tx.list_trials("study")) == []

    def test_concurrent_trial_creation_numbers_uniquely(self, driver: StoreDriver) -> None:
        driver.study()
        errors: list[BaseException] = []

        def create(tx: Transaction) -> None:
            tx.get_study("study", lock=True)
            tx.create_trial("study", TrialProposal(0, {"x": 1}), threading.current_thread().name, NOW)

        def worker() -> None:
            try:
                for _ in range(8):
                    driver.storage.run(create)
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, name=f"w{i}") for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        trials = driver.storage.run(lambda tx: tx.list_trials("study", limit=100))
        assert [t.number for t in trials] == list(range(1, 33))
        assert driver.storage.run(lambda tx: tx.get_study("study")).trial_count == 32


def test_unreachable_postgres_is_unavailable_quickly() -> None:
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://postgres@127.0.0.1:{port}/none"
    started = time.monotonic()
    with pytest.raises(UnavailableError, match="cannot reach database"):
        SqlStorage.from_url(url)
    with pytest.raises(UnavailableError, match="cannot reach database"):
        schema.upgrade(url)
    storage = SqlStorage.from_url(
        url, StorageSettings(max_attempts=3, retry_base_delay_s=0.01), check_schema=False
    )
    with pytest.raises(UnavailableError, match="after 3 attempt"):
        storage.run(lambda tx: tx.list_studies())
    storage.close()
    assert time.monotonic() - started < 5
