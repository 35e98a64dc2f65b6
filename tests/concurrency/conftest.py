"""Real service processes (`pbt-service serve`) on one database, and a PostgreSQL server that a
test may stop and start again (`pausable_postgres_url`), separate from the session's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """`pbt-service serve` on a fixed port, so that it can be killed and started again there."""

    def __init__(self, database_url: str, log_path: Path, *options: str) -> None:
        self.database_url = database_url
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self) -> subprocess.Popen[bytes]:
        command = [
            sys.executable, "-m", "pbt_service.cli", "serve", "--database-url", self.database_url,
            "--host", "127.0.0.1", "--port", str(self.port), "--grace-seconds", "0", *self.options,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        return self.process

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        self.launch()
        self.wait_serving(timeout)
        return self

    def wait_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                assert self.process is not None and self.process.poll() is None, self.log()
                try:
                    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"service on {self.address} did not start:\n{self.log()}")
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


@pytest.fixture
def services(tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    """Collects the ServiceProcess objects a test starts (`services.append(...)`) and stops them."""
    started: list[ServiceProcess] = []
    try:
        yield started
    finally:
        for service in started:
            service.stop()


def start_services(
    started: list[ServiceProcess], url: str, tmp_path: Path, count: int, options: Sequence[str] = ()
) -> list[ServiceProcess]:
    """`count` replicas on one database, launched at once (they race to create the schema)."""
    new = [ServiceProcess(url, tmp_path / f"service-{len(started) + i}.log", *options) for i in range(count)]
    started.extend(new)
    for service in new:
        service.launch()
    for service in new:
        service.wait_serving(60)
    return new


