"""A `Controller` over a real storage on every backend, with a settable clock: no gRPC."""

from __future__ import annotations

import pytest

from pbt_service.controller import Controller, ServiceSettings
from pbt_service.core.types import AlgorithmConfig, Goal, Objective, ParameterSpec, ParameterType, StudyConfig
from pbt_service.store.sql_storage import SqlStorage
from tests.fake_clock import FakeClock

LEASE_SECONDS = 60.0



@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(storage: SqlStorage, clock: FakeClock) -> Controller:
    return Controller(storage, ServiceSettings(lease_seconds=LEASE_SECONDS, retry_after_seconds=0.5), clock)


def config(population: int = 2, **algorithm: object) -> StudyConfig:
    """One float parameter, one objective 'score' to maximize."""
    return StudyConfig(
        parameters=(ParameterSpec("lr", ParameterType.FLOAT, low=0.1, high=1.0),),
        objectives=(Objective("score", Goal.MAXIMIZE),),
        algorithm=AlgorithmConfig(population_size=population, **algorithm),  # type: ignore[arg-type]
    )
