"""StudyConfig <-> JSON for the studies.config_json column: protobuf's JSON of the API message."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timezone

import pytest
from google.protobuf import json_format
from hypothesis import given, settings

from pbt_service.api.v1 import study_pb2
from pbt_service.converters import study_config_to_proto
from pbt_service.core.types import AlgorithmConfig, Goal, Objective, StudyConfig
from pbt_service.store.config_json import config_from_json, config_to_json
from pbt_service.store.sql_storage import SqlStorage
from tests.domain_strategies import STUDY_CONFIGS
from tests.store.store_driver import FULL_CONFIG

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)


def test_round_trip_is_exact_and_stable() -> None:
    text = config_to_json(FULL_CONFIG)
    assert config_from_json(text) == FULL_CONFIG
    assert config_to_json(config_from_json(text)) == text
    values = json.loads(text)["parameters"][2]["discrete"]["values"]
    assert [type(v) for v in values] == [float, float, float]


def test_it_is_protobufs_json_of_the_message() -> None:
    message = json_format.Parse(config_to_json(FULL_CONFIG), study_pb2.StudyConfig())
    assert message == study_config_to_proto(FULL_CONFIG)


@given(STUDY_CONFIGS)
def test_every_config_round_trips(config: StudyConfig) -> None:
    text = config_to_json(config)
    assert config_from_json(text) == config
    assert config_to_json(config_from_json(text)) == text


@settings(max_examples=40, deadline=None)
@given(STUDY_CONFIGS)
def test_every_config_round_trips_through_sqlite(config: StudyConfig) -> None:
    storage = _STORAGE.get() or _STORAGE.set(SqlStorage.from_url("sqlite://"))
    name = f"s{next(_NAMES)}"
    storage.run(lambda tx: tx.create_study(name, config, NOW))
    assert storage.run(lambda tx: tx.get_study(name)).config == config


def test_parsing_is_cached_by_text() -> None:
    text = config_to_json(FULL_CONFIG)
    assert config_from_json(text) is config_from_json(text)


def test_missing_keys_take_defaults() -> None:
    config = config_from_json('{"objectives": [{"metric": "loss", "goal": "MINIMIZE"}]}')
    assert config == StudyConfig(parameters=(), objectives=(Objective("loss", Goal.MINIMIZE),))
    assert config.algorithm == AlgorithmConfig()


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"objectives": [{}]}',
        '{"comparison": "best"}',
        '{"algorithm": {"population_size": "ten"}}',
        '{"parameters": [{"name": "x"}]}',
    ],
)
def test_malformed_is_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="malformed study config JSON"):
        config_from_json(text)


class _Holder:
    """One in-memory storage for all examples of a property (a fixture would be reset per test,
    not per example)."""

    def __init__(self) -> None:
        self._storage: SqlStorage | None = None

    def get(self) -> SqlStorage | None:
        return self._storage

    def set(self, storage: SqlStorage) -> SqlStorage:
        self._storage = storage
        return storage


_STORAGE = _Holder()
_NAMES = itertools.count()
