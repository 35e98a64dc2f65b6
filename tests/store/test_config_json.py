"""StudyConfig <-> JSON for the studies.config_json column."""

from __future__ import annotations

import json

import pytest

from pbt_service.core.types import AlgorithmConfig, Goal, Objective, StudyConfig
from pbt_service.store.config_json import config_from_json, config_to_json
from tests.store.store_driver import FULL_CONFIG


def test_round_trip_is_exact_and_stable() -> None:
    text = config_to_json(FULL_CONFIG)
    assert config_from_json(text) == FULL_CONFIG
    assert config_to_json(config_from_json(text)) == text
    values = json.loads(text)["parameters"][2]["values"]
    assert [type(v) for v in values] == [float, float, float]


def test_missing_keys_take_defaults() -> None:
    config = config_from_json('{"objectives": [{"metric": "loss", "goal": "minimize"}]}')
    assert config == StudyConfig(parameters=(), objectives=(Objective("loss", Goal.MINIMIZE),))
    assert config.algorithm == AlgorithmConfig()


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"objectives": [{}]}',
        '{"comparison": "best"}',
        '{"parameters": [{"name": "x", "type": "float", "values": [true]}]}',
    ],
)
def test_malformed_is_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        config_from_json(text)
