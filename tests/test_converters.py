"""Proto <-> domain: every field round-trips, every field is on the wire or listed, defaults live once."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from google.protobuf.message import Message
from hypothesis import given

from pbt_service import converters
from pbt_service.api.v1 import pbt_service_pb2, study_pb2, trial_pb2
from pbt_service.core.errors import InvalidArgumentError
from pbt_service.core.types import (
    AlgorithmConfig,
    Condition,
    Measurement,
    MedianStopping,
    Objective,
    ParameterSpec,
    Study,
    StudyConfig,
    Trial,
    TrialStatus,
)
from tests.domain_strategies import (
    MEASUREMENT_FIELDS,
    MEASUREMENTS,
    STUDIES,
    STUDY_CONFIGS,
    STUDY_FIELDS,
    TRIAL_FIELDS,
    TRIALS,
)

MESSAGES: dict[type, type[Message]] = {
    StudyConfig: study_pb2.StudyConfig,
    ParameterSpec: study_pb2.ParameterSpec,
    Condition: study_pb2.Condition,
    AlgorithmConfig: study_pb2.AlgorithmConfig,
    MedianStopping: study_pb2.MedianStoppingRule,
    Objective: study_pb2.Objective,
    Study: study_pb2.Study,
    Trial: trial_pb2.Trial,
    Measurement: trial_pb2.Measurement,
}
"""Each domain dataclass and the message that carries it."""

BY_NAME = (StudyConfig, AlgorithmConfig, MedianStopping, Objective, Study, Trial, Measurement)
"""Converted by reflection: each of their proto fields must be a dataclass field too."""


def _over_the_wire(message: Message) -> Message:
    """Serialized and parsed again, as a peer would see it."""
    return type(message).FromString(message.SerializeToString())


@given(STUDY_CONFIGS)
def test_study_config_round_trips(config: StudyConfig) -> None:
    message = _over_the_wire(converters.study_config_to_proto(config))
    assert isinstance(message, study_pb2.StudyConfig)
    assert converters.study_config_from_proto(message) == config


@given(STUDIES)
def test_study_round_trips(study: Study) -> None:
    message = _over_the_wire(converters.study_to_proto(study))
    assert isinstance(message, study_pb2.Study)
    assert converters.study_from_proto(message) == study


@given(TRIALS)
def test_trial_round_trips(trial: Trial) -> None:
    message = _over_the_wire(converters.trial_to_proto(trial))
    assert isinstance(message, trial_pb2.Trial)
    assert converters.trial_from_proto(message) == trial


@given(TRIALS)
def test_trial_without_measurements_keeps_the_final_one(trial: Trial) -> None:
    back = converters.trial_from_proto(converters.trial_to_proto(trial, with_measurements=False))
    assert back == dataclasses.replace(trial, measurements=())


@given(MEASUREMENTS)
def test_measurement_round_trips(measurement: Measurement) -> None:
    message = _over_the_wire(converters.measurement_to_proto(measurement))
    assert isinstance(message, trial_pb2.Measurement)
    assert converters.measurement_from_proto(message) == measurement


def test_nan_metrics_are_carried() -> None:
    back = converters.measurement_from_proto(converters.measurement_to_proto(Measurement(1, {"loss": math.nan})))
    assert math.isnan(back.metrics["loss"])


@pytest.mark.parametrize(
    ("fields", "cls"),
    [(TRIAL_FIELDS, Trial), (MEASUREMENT_FIELDS, Measurement), (STUDY_FIELDS, Study)],
)
def test_strategies_draw_every_field(fields: dict[str, Any], cls: type) -> None:
    assert set(fields) == {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("cls", list(MESSAGES), ids=lambda c: c.__name__)
def test_every_field_is_on_the_wire_or_listed(cls: type) -> None:
    on_the_wire = MESSAGES[cls].DESCRIPTOR.fields_by_name
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in on_the_wire
        and (cls, f.name) not in converters.WIRE_NAMES
        and (cls, f.name) not in converters.NOT_ON_THE_WIRE
    ]
    assert missing == [], f"{cls.__name__}: add {missing} to the message, or to NOT_ON_THE_WIRE with a reason"


def test_the_lists_name_real_fields_only() -> None:
    for cls, name in [*converters.WIRE_NAMES, *converters.NOT_ON_THE_WIRE]:
        assert name in {f.name for f in dataclasses.fields(cls)}, (cls, name)
        assert name not in MESSAGES[cls].DESCRIPTOR.fields_by_name, (cls, name)
    for reason in converters.NOT_ON_THE_WIRE.values():
        assert reason.strip()


@pytest.mark.parametrize("cls", BY_NAME, ids=lambda c: c.__name__)
def test_every_proto_field_has_a_dataclass_field(cls: type) -> None:
    names = {f.name for f in dataclasses.fields(cls)}
    assert [n for n in MESSAGES[cls].DESCRIPTOR.fields_by_name if n not in names] == []


@pytest.mark.parametrize("cls", list(MESSAGES), ids=lambda c: c.__name__)
def test_a_non_zero_default_is_optional_on_the_wire(cls: type) -> None:
    """Without `optional`, an unset field reads as 0 and its default would need a second copy."""
    on_the_wire = MESSAGES[cls].DESCRIPTOR.fields_by_name
    for field in dataclasses.fields(cls):
        proto = on_the_wire.get(field.name)
        if proto is None or proto.is_repeated or proto.has_presence or proto.enum_type is not None:
            continue
        if field.default is not dataclasses.MISSING:
            assert not field.default, f"{cls.__name__}.{field.name}: default {field.default!r} needs `optional`"


def test_unset_fields_take_the_dataclass_defaults() -> None:
    config = converters.study_config_from_proto(study_pb2.StudyConfig())
    assert config == StudyConfig(parameters=(), objectives=())
    assert config.algorithm == AlgorithmConfig()
    spec = converters.parameter_from_proto(
        study_pb2.ParameterSpec(name="x", float_range=study_pb2.FloatRange(low=0, high=1)), "p"
    )
    assert spec.scale is ParameterSpec("x", spec.type).scale


def test_an_explicit_zero_is_kept_for_validation_to_reject() -> None:
    message = study_pb2.StudyConfig(algorithm=study_pb2.AlgorithmConfig(population_size=0))
    assert converters.study_config_from_proto(message).algorithm.population_size == 0


def test_initiated_trial_id_reaches_the_wire() -> None:
    trial = Trial(1, "s", 1, 0, TrialStatus.COMPLETED, {}, initiated_trial_id=7)
    message = converters.trial_to_proto(trial)
    assert message.HasField("initiated_trial_id") and message.initiated_trial_id == 7
    assert not converters.trial_to_proto(dataclasses.replace(trial, initiated_trial_id=None)).HasField(
        "initiated_trial_id"
    )


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (study_pb2.StudyConfig(objectives=[study_pb2.Objective(metric="m")]), "config.objectives[0].goal"),
        (study_pb2.StudyConfig(comparison=99), "config.comparison"),  # type: ignore[arg-type]
        (study_pb2.StudyConfig(parameters=[study_pb2.ParameterSpec(name="x")]), "config.parameters[0]"),
    ],
)
def test_bad_config_names_the_field(message: study_pb2.StudyConfig, field: str) -> None:
    with pytest.raises(InvalidArgumentError, match=field.replace("[", r"\[").replace("]", r"\]")):
        converters.study_config_from_proto(message)


def test_unset_trial_status_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="trial.status: must be set"):
        converters.trial_from_proto(trial_pb2.Trial(id=1))


def test_list_trials_generation_has_presence() -> None:
    assert not pbt_service_pb2.ListTrialsRequest().HasField("generation")
    assert pbt_service_pb2.ListTrialsRequest(generation=0).HasField("generation")
