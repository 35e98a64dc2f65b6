"""Health follows the database: NOT_SERVING while it is unreachable, SERVING once it answers
again, and NOT_SERVING for good once the server shuts down."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pbt_service.server import SERVICE_NAME, RunningServer, ServerSettings, create_server
from pbt_service.store.base import Transaction
from pbt_service.store.sql_storage import SqlStorage, TransientDatabaseError
from tests.conftest import TEST_DATABASE, PausablePostgres

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
PROBE_SECONDS = 0.1


def status_over_grpc(running: RunningServer, service: str = SERVICE_NAME) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    status: int = reply.status
    return status


def status_in_process(running: RunningServer, service: str = SERVICE_NAME) -> int:
    """The servicer's status without a call (the server may be stopped)."""
    reply = running.health.Check(health_pb2.HealthCheckRequest(service=service), None)
    status: int = reply.status
    return status


def wait_for(read: Callable[[], int], wanted: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (found := read()) != wanted:
        assert time.monotonic() < deadline, f"status {found}, not {wanted} after {seconds}s"
        time.sleep(0.05)


@pytest.mark.postgres
def test_health_follows_a_postgres_outage(pausable_postgres: PausablePostgres) -> None:
    url = pausable_postgres.url(TEST_DATABASE)
    settings = ServerSettings(database_url=url, port=0, health_check_seconds=PROBE_SECONDS)
    running = create_server(settings)
    try:
        assert status_over_grpc(running) == SERVING
        pausable_postgres.pause()
        wait_for(lambda: status_over_grpc(running), NOT_SERVING, 10)
        assert status_over_grpc(running, "") == NOT_SERVING  # every name the server serves
        assert running.observability.monitor.database_up is False
        pausable_postgres.resume()
        wait_for(lambda: status_over_grpc(running), SERVING, 20)
        assert status_over_grpc(running, "") == SERVING
    finally:
        running.stop(0)
    assert not running.observability.monitor.running
    time.sleep(5 * PROBE_SECONDS)
    assert status_in_process(running) == NOT_SERVING  # shutdown is never turned back to SERVING


class SwitchableDatabase:
    """Makes the storage's transactions fail, as with an unreachable database, while `down`."""

    def __init__(self, storage: SqlStorage, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down = False
        original = storage.transaction

        @contextlib.contextmanager
        def switched() -> Iterator[Transaction]:
            if self.down:
                raise TransientDatabaseError("injected: connection refused")
            with original() as tx:
                yield tx

        monkeypatch.setattr(storage, "transaction", switched)


def test_health_follows_the_database_and_stays_down_after_shutdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = SqlStorage.from_url(f"sqlite:///{tmp_path / 'pbt.db'}")
    database = SwitchableDatabase(storage, monkeypatch)
    running = create_server(ServerSettings(port=0, health_check_seconds=PROBE_SECONDS), storage)
    try:
        assert status_over_grpc(running) == SERVING
        database.down = True
        wait_for(lambda: status_over_grpc(running), NOT_SERVING, 5)
        database.down = False
        wait_for(lambda: status_over_grpc(running), SERVING, 5)
        database.down = True
        wait_for(lambda: status_in_process(running), NOT_SERVING, 5)
        running.health.enter_graceful_shutdown()  # as `RunningServer.stop` does first
        database.down = False  # the database answers again while the server shuts down
        time.sleep(5 * PROBE_SECONDS)
        assert status_in_process(running) == NOT_SERVING
        assert status_in_process(running, "") == NOT_SERVING
    finally:
        running.stop(0)
    assert not running.observability.monitor.running
