"""Fair turns: the executor serves clients in turn, runs a demoted client's calls only when no one
else waits (one at a time, rate-limited), every submitted call runs; the scores demote a client
whose calls are mostly refused and forgive it when they succeed; and on the installed grpcio the
executor finds each call's client (a token, else its connection)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbt_service.api.v1 import pbt_service_pb2 as pb
from pbt_service.fairness import ClientScores, FairExecutor, client_key
from pbt_service.server import RunningServer, ServerSettings, create_server


class Event:
    """Stands in for grpcio's call event: what `FairExecutor.submit` reads a call's client from."""

    def __init__(self, key: str) -> None:
        self.invocation_metadata = (("authorization", f"Bearer {key}"),)
        self.call = self

    def peer(self) -> bytes:
        return b"ipv4:127.0.0.1:1"


def token_key(name: str) -> str:
    return client_key((("authorization", f"Bearer {name}"),), "ignored")


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def test_clients_are_served_in_turn_not_in_arrival_order(gate: threading.Event) -> None:
    scores = ClientScores()
    executor = FairExecutor(1, scores)
    order: list[str] = []
    try:
        executor.submit(lambda _e: gate.wait(10), Event("blocker"))  # holds the only thread
        time.sleep(0.05)
        done = [executor.submit(lambda _e, n=name: order.append(n), Event(name))
                for name in ["flood"] * 5 + ["worker-1", "worker-2"]]  # fmt: skip
        gate.set()
        for future in done:
            future.result(timeout=10)
    finally:
        executor.shutdown()
    assert order.index("worker-1") <= 1 and order.index("worker-2") <= 3, order
    assert sorted(order) == sorted(["flood"] * 5 + ["worker-1", "worker-2"])


def test_a_demoted_client_runs_only_when_no_one_else_waits(gate: threading.Event) -> None:
    scores = ClientScores(min_calls=2)
    for _ in range(5):
        scores.record(token_key("flood"), refused=True)
    assert scores.demoted(token_key("flood"))
    executor = FairExecutor(1, scores, demoted_per_second=1000)
    order: list[str] = []
    try:
        executor.submit(lambda _e: gate.wait(10), Event("blocker"))
        time.sleep(0.05)
        done = [executor.submit(lambda _e, n=name: order.append(n), Event(name))
                for name in ["flood", "flood", "worker-1", "flood", "worker-2"]]  # fmt: skip
        gate.set()
        for future in done:
            future.result(timeout=10)
    finally:
        executor.shutdown()
    assert order == ["worker-1", "worker-2", "flood", "flood", "flood"]


def test_demoted_calls_run_one_at_a_time_and_at_the_set_rate() -> None:
    scores = ClientScores(min_calls=1)
    scores.record(token_key("flood"), refused=True)
    executor = FairExecutor(4, scores, demoted_per_second=20)
    running, most = 0, 0
    lock = threading.Lock()

    def call(_event: Any) -> float:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return time.monotonic()

    try:
        started = time.monotonic()
        finished = [f.result(timeout=10) for f in [executor.submit(call, Event("flood")) for _ in range(6)]]
    finally:
        executor.shutdown()
    assert most == 1
    assert max(finished) - started >= 5 / 20 - 0.02  # six calls, 50 ms apart


def test_scores_demote_mostly_refused_clients_and_forgive_them() -> None:
    scores = ClientScores(window=10, min_calls=5)
    key = token_key("client")
    for _ in range(4):
        scores.record(key, refused=True)
    assert not scores.demoted(key)  # too few calls to judge
    for _ in range(10):
        scores.record(key, refused=True)
    assert scores.demoted(key)
    for _ in range(12):
        scores.record(key, refused=False)
    assert not scores.demoted(key)
    scores.record(token_key("worker"), refused=False)
    assert not scores.demoted(token_key("worker"))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.booleans()), min_size=1, max_size=40))
def test_every_submitted_call_runs_exactly_once(calls: list[tuple[str, bool]]) -> None:
    scores = ClientScores(min_calls=1)
    for name, refused in calls:
        scores.record(token_key(name), refused)
    executor = FairExecutor(3, scores, demoted_per_second=10_000)
    ran: list[int] = []
    lock = threading.Lock()

    def call(_event: Any, i: int) -> int:
        with lock:
            ran.append(i)
        return i

    try:
        futures = [executor.submit(call, Event(name), i) for i, (name, _) in enumerate(calls)]
        assert [f.result(timeout=10) for f in futures] == list(range(len(calls)))
    finally:
        executor.shutdown()
    assert sorted(ran) == list(range(len(calls)))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = create_server(ServerSettings(database_url=f"sqlite:///{tmp_path / 'fair.db'}", port=0))
    yield running
    running.stop(0)


def test_on_this_grpcio_the_executor_finds_each_calls_client(server: RunningServer) -> None:
    """Calls with a token are that token's, calls without one their connection's: a refused
    client is demoted by key, and a different token on the same connection is not."""
    seen: list[str] = []
    original = server.executor.submit

    def spy(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        from pbt_service.fairness import _event_key

        seen.append(_event_key(args))
        return original(fn, *args, **kwargs)

    server.executor.submit = spy  # type: ignore[method-assign]
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        get = channel.unary_unary("/pbt_service.api.v1.PbtService/GetStudy")
        for metadata in ((("authorization", "Bearer one"),), (("authorization", "Bearer two"),), None):
            with pytest.raises(grpc.RpcError):
                get(pb.GetStudyRequest(name="missing").SerializeToString(), timeout=10, metadata=metadata)
    assert seen[:2] == [token_key("one"), token_key("two")]
    assert seen[2].startswith("peer:ipv4:127.0.0.1:")
