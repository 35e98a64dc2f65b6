"""A real server on a loopback port over a real SQLite file, and a client for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pbt_service.controller import ServiceSettings
from pbt_service.core.types import (
    AlgorithmConfig,
    Goal,
    Objective,
    ParameterSpec,
    ParameterType,
    Scale,
    StudyConfig,
)
from pbt_service.server import RunningServer, ServerSettings, create_server
from pbt_service.store.sql_storage import SqlStorage
from tests.fake_clock import FakeClock
from worker_client import PbtClient


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'pbt.db'}"


@pytest.fixture
def server(database_url: str, clock: FakeClock) -> Iterator[RunningServer]:
    settings = ServerSettings(
        database_url=database_url,
        host="127.0.0.1",
        port=0,
        service=ServiceSettings(lease_seconds=60.0, retry_after_seconds=0.01),
    )
    running = create_server(settings, SqlStorage.from_url(database_url), clock)
    yield running
    running.stop(0)


@pytest.fixture
def client(server: RunningServer) -> Iterator[PbtClient]:
    with PbtClient(f"127.0.0.1:{server.port}", timeout_seconds=10, retry_seconds=0) as c:
        yield c


def simple_config(population: int = 4, **algorithm: object) -> StudyConfig:
    """Two floats, one objective 'score' to maximize."""
    return StudyConfig(
        parameters=(
            ParameterSpec("lr", ParameterType.FLOAT, low=1e-4, high=1.0, scale=Scale.LOG),
            ParameterSpec("h", ParameterType.FLOAT, low=0.0, high=1.0),
        ),
        objectives=(Objective("score", Goal.MAXIMIZE),),
        algorithm=AlgorithmConfig(population_size=population, **algorithm),  # type: ignore[arg-type]
    )
