"""Every worker call is safe to repeat (its reply may be lost): once in turn, and eight times at
once, on SQLite and PostgreSQL. The stored trial is compared whole before and after a repeat."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import grpc
import pytest

from pbt_service.controller import ServiceSettings
from pbt_service.core.types import Measurement, Trial, TrialStatus
from pbt_service.server import ServerSettings, create_server
from tests.service.conftest import simple_config
from worker_client import PbtClient

R = TypeVar("R")
M = Measurement(3, {"score": 0.5}, checkpoint_path="/c/3")


@pytest.fixture(params=["sqlite-file", pytest.param("postgresql", marks=pytest.mark.postgres)])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PbtClient]:
    if request.param == "sqlite-file":
        url = f"sqlite:///{tmp_path / 'pbt.db'}"
    else:
        url = request.getfixturevalue("postgres_schema_url")
    service = ServiceSettings(retry_after_seconds=0.01)
    settings = ServerSettings(database_url=url, host="127.0.0.1", port=0, service=service)
    running = create_server(settings)
    with PbtClient(f"127.0.0.1:{running.port}", retry_seconds=0) as c:
        c.create_study("idem", simple_config(2))
        yield c
    running.stop(0)


def at_once(call: Callable[[], R], times: int = 8) -> list[R]:
    """`call` from `times` threads released together; raises the first error."""
    barrier = threading.Barrier(times)
    results: list[R] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(call())
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def refused(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


def stored(client: PbtClient) -> list[Trial]:
    return client.list_trials("idem")


def test_get_new_suggestion_returns_the_active_trial(client: PbtClient) -> None:
    first = client.get_new_suggestion("idem", "w1").trials
    again = at_once(lambda: client.get_new_suggestion("idem", "w1").trials)
    assert {tuple(t.id for t in r) for r in again} == {(first[0].id,)}
    pair = client.get_new_suggestion("idem", "w1", count=2).trials
    assert pair[0].id == first[0].id and client.get_new_suggestion("idem", "w1", count=2).trials == pair
    assert [t.id for t in stored(client)] == [t.id for t in pair]
    assert client.get_study("idem").trial_count == 2


def test_report_measurement_repeated_is_a_no_op(client: PbtClient) -> None:
    trial = client.get_new_suggestion("idem", "w1").trials[0]
    assert client.report_measurement(trial.id, "w1", M) is False
    before = stored(client)
    assert at_once(lambda: client.report_measurement(trial.id, "w1", M)) == [False] * 8
    changed = Measurement(3, {"score": 9.0}, checkpoint_path="/other")
    assert client.report_measurement(trial.id, "w1", changed) is False  # the step is taken: first wins
    assert stored(client) == before
    concurrent = client.get_new_suggestion("idem", "w2").trials[0]
    assert set(at_once(lambda: client.report_measurement(concurrent.id, "w2", M))) == {False}
    assert [m.step for m in client.get_trial(concurrent.id).measurements] == [3]


def test_heartbeat_repeated_only_renews(client: PbtClient) -> None:
    trial = client.get_new_suggestion("idem", "w1").trials[0]
    assert at_once(lambda: client.heartbeat(trial.id, "w1")) == [False] * 8
    after = client.get_trial(trial.id)
    assert (after.status, after.measurements, after.worker_id) == (TrialStatus.ACTIVE, (), "w1")


def test_complete_trial_repeated_with_the_same_content_succeeds_once(client: PbtClient) -> None:
    trial = client.get_new_suggestion("idem", "w1").trials[0]
    client.report_measurement(trial.id, "w1", M)
    done = client.complete_trial(trial.id, "w1", M)
    before = stored(client)
    assert at_once(lambda: client.complete_trial(trial.id, "w1", M)) == [done] * 8
    assert client.complete_trial(trial.id, "w1") == done  # no final measurement: the same request
    other = Measurement(4, {"score": 0.7})
    conflicting = refused(lambda: client.complete_trial(trial.id, "w1", other))
    assert conflicting == refused(lambda: client.complete_trial(trial.id, "w1", failure_reason="x"))
    assert conflicting == grpc.StatusCode.FAILED_PRECONDITION
    assert stored(client) == before
    racing = client.get_new_suggestion("idem", "w2").trials[0]
    client.report_measurement(racing.id, "w2", M)
    results = at_once(lambda: client.complete_trial(racing.id, "w2"))
    assert len({(t.status, t.end_time) for t in results}) == 1 and results[0].status is TrialStatus.COMPLETED


def test_failed_completion_and_stop_repeated_change_nothing(client: PbtClient) -> None:
    failing, stopping = (client.get_new_suggestion("idem", w).trials[0] for w in ("w1", "w2"))
    failed = at_once(lambda: client.complete_trial(failing.id, "w1", failure_reason="out of memory"))
    assert {(t.status, t.status_message, t.end_time) for t in failed} == {
        (TrialStatus.FAILED, "out of memory", failed[0].end_time)
    }
    stopped = at_once(lambda: client.stop_trial(stopping.id, "preempted", "w2"))
    assert {(t.status, t.end_time) for t in stopped} == {(TrialStatus.STOPPED, stopped[0].end_time)}
    before = stored(client)
    assert client.complete_trial(failing.id, "w1", failure_reason="out of memory") == failed[0]
    assert client.stop_trial(stopping.id, "preempted", "w2") == stopped[0]
    assert stored(client) == before
    assert client.get_study("idem").trial_count == 2
