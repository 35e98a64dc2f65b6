"""Leases with real time and real processes: a silent worker's trial is stopped exactly once, by
whichever replica or call sees it first, and its reproduction is handed back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pbt_service.core.types import Measurement, TrialStatus
from tests.concurrency.conftest import ServiceProcess, start_services
from tests.concurrency.invariants import LIVE
from tests.service.conftest import simple_config
from worker_client import PbtClient

LEASE = 1.5
OPTIONS = ("--lease-seconds", str(LEASE), "--retry-after-seconds", "0.05")
pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def finish(client: PbtClient, trial_id: int, worker: str) -> None:
    client.report_measurement(trial_id, worker, Measurement(1, {"score": float(trial_id)}, checkpoint_path="/c"))
    client.complete_trial(trial_id, worker)


def refused(call: object) -> str:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
        return error.details() or ""
    raise AssertionError("the call was accepted")


@pytest.fixture
def two_replicas(
    fresh_postgres_url: str, services: list[ServiceProcess], tmp_path: Path
) -> Iterator[tuple[PbtClient, PbtClient]]:
    """Clients of two replicas on one database, leases of LEASE seconds."""
    a, b = start_services(services, fresh_postgres_url, tmp_path, 2, OPTIONS)
    with PbtClient(a.address) as one, PbtClient(b.address) as other:
        yield one, other


def test_late_report_stops_the_lapsed_trial_and_hands_back(two_replicas: tuple[PbtClient, PbtClient]) -> None:
    one, other = two_replicas
    one.create_study("late", simple_config(2))
    for worker in ("w1", "w2"):
        finish(one, one.get_new_suggestion("late", worker).trials[0].id, worker)
    child = other.get_new_suggestion("late", "w3").trials[0]
    time.sleep(LEASE + 0.5)  # nobody asks for a suggestion meanwhile: the report sees it first
    message = refused(lambda: one.report_measurement(child.id, "w3", Measurement(1, {"score": 1.0})))
    assert "lease expired" in message
    stopped = other.get_trial(child.id)
    assert (stopped.status, stopped.status_message, stopped.measurements) == (
        TrialStatus.STOPPED, "lease expired", ()
    )  # fmt: skip
    assert other.get_trial(child.initiator_parent_trial_id or 0).initiated_trial_id is None
    assert "stopped" in refused(lambda: other.complete_trial(child.id, "w3", Measurement(1, {"score": 1.0})))
    assert "stopped" in refused(lambda: one.heartbeat(child.id, "w3"))
    replacement = other.get_new_suggestion("late", "w4").trials[0]
    assert (replacement.generation, replacement.initiator_parent_trial_id) == (1, child.initiator_parent_trial_id)
    assert other.get_trial(child.id) == stopped


def test_lapsed_trials_are_stopped_once_whoever_races(
    fresh_postgres_url: str, services: list[ServiceProcess], tmp_path: Path
) -> None:
    replicas = start_services(services, fresh_postgres_url, tmp_path, 3, OPTIONS)
    clients = [PbtClient(r.address, retry_seconds=10) for r in replicas]
    population = 8
    clients[0].create_study("race", simple_config(population))
    silent = [clients[i % 3].get_new_suggestion("race", f"silent{i}").trials[0] for i in range(population)]
    time.sleep(LEASE + 0.5)
    barrier = threading.Barrier(population + 12)
    errors: list[BaseException] = []

    def late_report(i: int) -> None:
        barrier.wait()
        refused(lambda: clients[i % 3].report_measurement(silent[i].id, f"silent{i}", Measurement(1, {"score": 1.0})))

    def newcomer(i: int) -> None:
        barrier.wait()
        clients[i % 3].get_new_suggestion("race", f"new{i}")

    def guarded(target: object, i: int) -> None:
        try:
            target(i)  # type: ignore[operator]
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(late_report, i)) for i in range(population)]
    threads += [threading.Thread(target=guarded, args=(newcomer, i)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    trials = clients[0].list_trials("race")
    by_id = {t.id: t for t in trials}
    assert all(by_id[t.id].status is TrialStatus.STOPPED for t in silent)
    assert all(by_id[t.id].status_message == "lease expired" for t in silent)
    assert [t.number for t in trials] == list(range(1, len(trials) + 1))
    assert sum(t.status in LIVE for t in trials) == population  # the replacements, none twice
    for client in clients:
        client.close()


def test_heartbeats_hold_the_lease_and_silence_loses_it(two_replicas: tuple[PbtClient, PbtClient]) -> None:
    worker, poller = two_replicas
    worker.create_study("beat", simple_config(2))
    held = worker.get_new_suggestion("beat", "w1", count=2).trials  # the whole generation 0
    until = time.monotonic() + 2 * LEASE
    while time.monotonic() < until:
        assert [worker.heartbeat(t.id, "w1") for t in held] == [False, False]
        assert poller.get_new_suggestion("beat", "w2").trials == ()  # nothing to do meanwhile
        time.sleep(LEASE / 5)
    assert {poller.get_trial(t.id).status for t in held} == {TrialStatus.ACTIVE}
    time.sleep(LEASE + 0.3)
    replacement = poller.get_new_suggestion("beat", "w2").trials
    assert {poller.get_trial(t.id).status for t in held} == {TrialStatus.STOPPED}
    assert [t.generation for t in replacement] == [0]
