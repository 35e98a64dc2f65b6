"""PostgreSQL goes away for a while: calls fail fast with UNAVAILABLE, never past their deadline,
and the same service process serves again by itself once the database is back."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from pbt_service.core.types import Measurement, TrialStatus
from tests.concurrency.conftest import ServiceProcess
from tests.conftest import PausablePostgres
from tests.service.conftest import simple_config
from worker_client import PbtClient


def call_code(call: object) -> tuple[grpc.StatusCode, float]:
    started = time.monotonic()
    try:
        call()  # type: ignore[operator]
        code = grpc.StatusCode.OK
    except grpc.RpcError as error:
        code = error.code()
    return code, time.monotonic() - started


@pytest.mark.postgres
@pytest.mark.slow
def test_database_outage_is_unavailable_then_recovers(pausable_postgres: PausablePostgres, tmp_path: Path) -> None:
    url = pausable_postgres.url("pbt_test")
    service = ServiceProcess(url, tmp_path / "service.log").start()
    try:
        with PbtClient(service.address, timeout_seconds=10, retry_seconds=0) as client:
            client.create_study("outage", simple_config(2))
            trial = client.get_new_suggestion("outage", "w1").trials[0]
            pid = service.process.pid if service.process else None

            pausable_postgres.pause()
            for call in (
                lambda: client.get_new_suggestion("outage", "w2"),
                lambda: client.report_measurement(trial.id, "w1", Measurement(1, {"score": 1.0})),
                lambda: client.get_trial(trial.id),
            ):
                code, seconds = call_code(call)
                assert code == grpc.StatusCode.UNAVAILABLE and seconds < 6.0, (code, seconds)
            with PbtClient(service.address, timeout_seconds=1.5, retry_seconds=0) as hurried:
                code, seconds = call_code(lambda: hurried.get_new_suggestion("outage", "w2"))
                assert code == grpc.StatusCode.UNAVAILABLE and seconds < 1.5, (code, seconds)

            pausable_postgres.resume()
            deadline = time.monotonic() + 20
            while call_code(lambda: client.get_trial(trial.id))[0] != grpc.StatusCode.OK:
                assert time.monotonic() < deadline, "the service did not recover"
                time.sleep(0.2)
            assert service.process is not None and service.process.pid == pid and service.process.poll() is None
            assert client.report_measurement(trial.id, "w1", Measurement(1, {"score": 1.0})) is False
            assert client.complete_trial(trial.id, "w1").status is TrialStatus.COMPLETED
            assert client.get_new_suggestion("outage", "w2").trials
    finally:
        service.stop()
