"""What one client can take from a server: a request over the size limit is RESOURCE_EXHAUSTED
and the next call succeeds; calls beyond the replica's concurrency limit are RESOURCE_EXHAUSTED
while the ones admitted finish; a connection's calls beyond its stream limit wait or are refused
UNAVAILABLE, which a retrying client gets past."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import TypeVar

import grpc
import pytest

from pbt_service.api.v1 import pbt_service_pb2 as pb
from pbt_service.server import LimitSettings, RunningServer, ServerSettings, create_server
from pbt_service.store.base import Transaction
from pbt_service.store.sql_storage import SqlStorage
from tests.service.conftest import simple_config
from worker_client import PbtClient

T = TypeVar("T")
GET_STUDY = "/pbt_service.api.v1.PbtService/GetStudy"


class SlowStorage(SqlStorage):
    """Every transaction takes at least `delay` seconds, so calls pile up in flight."""

    delay = 0.0

    def run(self, work: Callable[[Transaction], T], *, timeout_s: float | None = None) -> T:
        time.sleep(self.delay)
        return super().run(work, timeout_s=timeout_s)


def _start(tmp_path: Path, limits: LimitSettings, max_workers: int = 4) -> tuple[RunningServer, SlowStorage]:
    url = f"sqlite:///{tmp_path / 'limits.db'}"
    storage = SlowStorage.from_url(url)
    assert isinstance(storage, SlowStorage)
    running = create_server(
        ServerSettings(database_url=url, port=0, max_workers=max_workers, limits=limits), storage
    )
    with PbtClient(f"127.0.0.1:{running.port}") as client:
        client.create_study("s", simple_config())
    return running, storage


@pytest.fixture
def stop_later() -> Iterator[list[RunningServer]]:
    servers: list[RunningServer] = []
    yield servers
    for running in servers:
        running.stop(0)


def test_an_oversized_request_is_resource_exhausted_and_the_next_call_succeeds(
    tmp_path: Path, stop_later: list[RunningServer]
) -> None:
    running, _ = _start(tmp_path, LimitSettings(max_message_bytes=64 * 1024))
    stop_later.append(running)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        raw = channel.unary_unary(GET_STUDY)
        for size in (64 * 1024 + 1, 1024 * 1024, 3 * 1024 * 1024):
            with pytest.raises(grpc.RpcError) as error:
                raw(b"\x0a" + b"\xff" * size, timeout=10)
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            reply = raw(pb.GetStudyRequest(name="s").SerializeToString(), timeout=10)
            assert reply
    with PbtClient(f"127.0.0.1:{running.port}") as client:
        assert client.get_study("s").name == "s"


def test_calls_beyond_the_concurrency_limit_are_refused_and_the_admitted_ones_finish(
    tmp_path: Path, stop_later: list[RunningServer]
) -> None:
    running, storage = _start(tmp_path, LimitSettings(max_concurrent_rpcs=3), max_workers=3)
    stop_later.append(running)
    storage.delay = 0.5
    request = pb.GetStudyRequest(name="s").SerializeToString()
    channels = [grpc.insecure_channel(f"127.0.0.1:{running.port}") for _ in range(4)]
    try:
        start = threading.Barrier(12)

        def call(i: int) -> grpc.StatusCode:
            start.wait()
            try:
                channels[i % 4].unary_unary(GET_STUDY)(request, timeout=30)
                return grpc.StatusCode.OK
            except grpc.RpcError as error:
                code: grpc.StatusCode = error.code()
                return code

        with futures.ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(call, range(12)))
    finally:
        for channel in channels:
            channel.close()
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
    assert 1 <= codes.count(grpc.StatusCode.OK) <= 9
    storage.delay = 0.0
    with PbtClient(f"127.0.0.1:{running.port}") as client:
        assert client.get_study("s").name == "s"


def test_a_connection_beyond_its_stream_limit_waits_or_is_refused_and_a_retrying_client_gets_through(
    tmp_path: Path, stop_later: list[RunningServer]
) -> None:
    """Calls beyond a connection's stream limit wait in the client, or, when the client sends them
    before the server has freed the streams of answered calls, are reset (REFUSED_STREAM, which
    the client sees as UNAVAILABLE): never anything else. `PbtClient` retries UNAVAILABLE, so all
    of its calls get through."""
    running, storage = _start(tmp_path, LimitSettings(max_streams_per_connection=2), max_workers=8)
    stop_later.append(running)
    storage.delay = 0.2
    request = pb.GetStudyRequest(name="s").SerializeToString()
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        raw = channel.unary_unary(GET_STUDY)
        raw(request, timeout=30)

        def call(_: int) -> grpc.StatusCode:
            try:
                raw(request, timeout=30)
                return grpc.StatusCode.OK
            except grpc.RpcError as error:
                code: grpc.StatusCode = error.code()
                return code

        with futures.ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(call, range(6)))
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, codes
    assert grpc.StatusCode.OK in codes
    with PbtClient(f"127.0.0.1:{running.port}", retry_seconds=30) as client, futures.ThreadPoolExecutor(6) as pool:
        assert [s.name for s in pool.map(lambda _: client.get_study("s"), range(6))] == ["s"] * 6
