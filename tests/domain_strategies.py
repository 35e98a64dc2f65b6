"""Hypothesis strategies for every domain value that crosses the wire or the store.

The flat settings (AlgorithmConfig, MedianStopping) are drawn by reflection from their proto
fields, so a setting added to the dataclass and the message is covered without touching this
file. Values are what the wire can carry exactly: no NaN (NaN != NaN), no lone surrogates
(protobuf strings are UTF-8), aware UTC datetimes with microseconds, parameters of one shape each
(a float range carries no `values`, categories are strings, and so on).
"""

from __future__ import annotations

import dataclasses
import typing
from datetime import datetime, timezone
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

from pbt_service.api.v1 import study_pb2
from pbt_service.core.types import (
    AlgorithmConfig,
    CheckpointPolicy,
    CheckpointState,
    Comparison,
    Condition,
    Goal,
    LineageRecord,
    Measurement,
    Objective,
    ParameterSpec,
    ParameterType,
    ParamValue,
    Scale,
    Study,
    StudyConfig,
    StudyState,
    Trial,
    TrialStatus,
)

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
IDS = st.integers(1, 2**63 - 1)
FLOATS = st.floats(allow_nan=False)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
NAMES = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)
TIMES = st.datetimes(datetime(1900, 1, 1), datetime(2200, 1, 1), timezones=st.just(timezone.utc))

_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_INT32: INT32,
    FieldDescriptor.TYPE_INT64: INT64,
    FieldDescriptor.TYPE_DOUBLE: FLOATS,
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_STRING: TEXT,
}


def reflected(cls: type, message: Descriptor) -> st.SearchStrategy[Any]:
    """`cls` with every field drawn from the type of its proto field (nested messages too).

    A repeated field is never empty: empty means "the default" on the wire.
    """
    hints = typing.get_type_hints(cls)
    drawn: dict[str, st.SearchStrategy[Any]] = {}
    for field in dataclasses.fields(cls):
        proto = message.fields_by_name[field.name]
        if proto.message_type is not None:
            drawn[field.name] = reflected(hints[field.name], proto.message_type)
        elif proto.is_repeated:
            drawn[field.name] = st.lists(_SCALARS[proto.type], min_size=1, max_size=4).map(tuple)
        elif proto.type == FieldDescriptor.TYPE_ENUM:
            drawn[field.name] = st.sampled_from(hints[field.name])
        else:
            drawn[field.name] = _SCALARS[proto.type]
    return st.builds(cls, **drawn)


def _condition() -> st.SearchStrategy[Condition | None]:
    categories = st.lists(TEXT, max_size=3).map(tuple)
    numbers = st.lists(FLOATS, max_size=3).map(tuple)
    values: st.SearchStrategy[tuple[ParamValue, ...]] = st.one_of(categories, numbers)
    return st.none() | st.builds(Condition, parent=TEXT, values=values)


def _common() -> dict[str, st.SearchStrategy[Any]]:
    return {"name": TEXT, "frozen": st.booleans(), "condition": _condition()}


PARAMETERS = st.one_of(
    st.builds(ParameterSpec, type=st.just(ParameterType.FLOAT), low=FLOATS, high=FLOATS,
              scale=st.sampled_from(Scale), **_common()),
    st.builds(ParameterSpec, type=st.just(ParameterType.INTEGER), low=INT64, high=INT64, **_common()),
    st.builds(ParameterSpec, type=st.just(ParameterType.DISCRETE),
              values=st.lists(FLOATS, max_size=4).map(tuple), **_common()),
    st.builds(ParameterSpec, type=st.just(ParameterType.CATEGORICAL),
              values=st.lists(TEXT, max_size=4).map(tuple), **_common()),
)  # fmt: skip

STUDY_CONFIGS = st.builds(
    StudyConfig,
    parameters=st.lists(PARAMETERS, max_size=4).map(tuple),
    objectives=st.lists(st.builds(Objective, metric=TEXT, goal=st.sampled_from(Goal)), max_size=3).map(tuple),
    comparison=st.sampled_from(Comparison),
    algorithm=reflected(AlgorithmConfig, study_pb2.AlgorithmConfig.DESCRIPTOR),
    checkpoints=st.builds(
        CheckpointPolicy, roots=st.lists(TEXT, min_size=1, max_size=3).map(tuple), keep_best=INT32
    ),
)

STUDY_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "name": TEXT, "config": STUDY_CONFIGS, "state": st.sampled_from(StudyState), "trial_count": INT64,
    "create_time": st.none() | TIMES,
}
STUDIES = st.builds(Study, **STUDY_FIELDS)

PARAM_VALUES: st.SearchStrategy[ParamValue] = st.one_of(FLOATS, INT64, TEXT)

MEASUREMENT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "step": st.integers(0, 2**63 - 1),
    "metrics": st.dictionaries(NAMES, FLOATS, max_size=3),
    "checkpoint_path": TEXT,
    "elapsed_seconds": st.floats(0, 1e12),
    "create_time": st.none() | TIMES,
    "checkpoint_state": st.sampled_from(CheckpointState),
}
MEASUREMENTS = st.builds(Measurement, **MEASUREMENT_FIELDS)

TRIAL_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": IDS,
    "study": TEXT,
    "number": INT64,
    "generation": INT32,
    "status": st.sampled_from(TrialStatus),
    "hparams": st.dictionaries(TEXT, PARAM_VALUES, max_size=4),
    "warm_start_checkpoint_path": TEXT,
    "parent_trial_id": st.none() | IDS,
    "initiator_parent_trial_id": st.none() | IDS,
    "measurements": st.lists(MEASUREMENTS, max_size=3).map(tuple),
    "final_measurement": st.none() | MEASUREMENTS,
    "worker_id": TEXT,
    "stop_requested": st.booleans(),
    "status_message": TEXT,
    "initiated_trial_id": st.none() | IDS,
    "create_time": st.none() | TIMES,
    "heartbeat_time": st.none() | TIMES,
    "end_time": st.none() | TIMES,
    "steps": INT64,
    "lineage": st.just(LineageRecord()),  # not on the wire (converters.NOT_ON_THE_WIRE)
}
"""Every field of Trial, each drawn (a test checks none is missing)."""
TRIALS = st.builds(Trial, **TRIAL_FIELDS)
