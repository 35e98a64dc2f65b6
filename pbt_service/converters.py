"""Proto <-> domain conversion: the only module that knows both.

Each message has a `*_to_proto` / `*_from_proto` pair; `from_proto` raises `InvalidArgumentError`
naming the field when a message cannot be expressed in the domain (the servicer maps it to INVALID_ARGUMENT).
Fields of the same name are copied by reflection (`proto_fields`), and unset fields keep the
dataclass defaults: adding a setting means adding it to the dataclass and to the message. The
dataclass fields that deliberately have no proto field are listed in `NOT_ON_THE_WIRE`.
"""

from __future__ import annotations

import math

from pbt_service.api.v1 import study_pb2, trial_pb2
from pbt_service.core.errors import InvalidArgumentError
from pbt_service.core.types import (
    CheckpointState,
    Comparison,
    Condition,
    ExploreStrategy,
    Goal,
    Measurement,
    OpponentStrategy,
    ParameterSpec,
    ParameterType,
    ParamValue,
    Scale,
    SelectionScore,
    SelectionStrategy,
    Study,
    StudyConfig,
    StudyState,
    Trial,
    TrialStatus,
)
from pbt_service.proto_fields import ProtoFields

_GOALS: dict[int, Goal] = {study_pb2.MAXIMIZE: Goal.MAXIMIZE, study_pb2.MINIMIZE: Goal.MINIMIZE}
_STATUSES: dict[int, TrialStatus] = {
    trial_pb2.ACTIVE: TrialStatus.ACTIVE,
    trial_pb2.COMPLETED: TrialStatus.COMPLETED,
    trial_pb2.STOPPED: TrialStatus.STOPPED,
    trial_pb2.FAILED: TrialStatus.FAILED,
}
FIELDS = ProtoFields({
    Goal: _GOALS,
    Comparison: {study_pb2.LEXICOGRAPHIC: Comparison.LEXICOGRAPHIC, study_pb2.PARETO: Comparison.PARETO},
    Scale: {study_pb2.SCALE_LINEAR: Scale.LINEAR, study_pb2.SCALE_LOG: Scale.LOG},
    StudyState: {
        study_pb2.STUDY_ACTIVE: StudyState.ACTIVE,
        study_pb2.STUDY_DONE: StudyState.DONE,
        study_pb2.STUDY_PAUSED: StudyState.PAUSED,
    },
    CheckpointState: {
        trial_pb2.CHECKPOINT_PRESENT: CheckpointState.PRESENT,
        trial_pb2.CHECKPOINT_COLLECTING: CheckpointState.COLLECTING,
        trial_pb2.CHECKPOINT_DELETED: CheckpointState.DELETED,
    },
    TrialStatus: _STATUSES,
    SelectionStrategy: {
        study_pb2.SELECTION_TOURNAMENT: SelectionStrategy.TOURNAMENT,
        study_pb2.SELECTION_TRUNCATION: SelectionStrategy.TRUNCATION,
    },
    OpponentStrategy: {
        study_pb2.OPPONENTS_PAST: OpponentStrategy.PAST,
        study_pb2.OPPONENTS_SAME: OpponentStrategy.SAME,
        study_pb2.OPPONENTS_ANY: OpponentStrategy.ANY,
    },
    SelectionScore: {
        study_pb2.SCORE_LAST: SelectionScore.LAST,
        study_pb2.SCORE_SMOOTHED: SelectionScore.SMOOTHED,
        study_pb2.SCORE_IMPROVEMENT: SelectionScore.IMPROVEMENT,
    },
    ExploreStrategy: {
        study_pb2.EXPLORE_PERTURB: ExploreStrategy.PERTURB,
        study_pb2.EXPLORE_RESAMPLE: ExploreStrategy.RESAMPLE,
        study_pb2.EXPLORE_PB2: ExploreStrategy.PB2,
    },
})

WIRE_NAMES: dict[tuple[type, str], str] = {
    (ParameterSpec, "type"): "domain (the oneof: float_range, integer_range, discrete, categorical)",
    (ParameterSpec, "low"): "float_range.low / integer_range.low",
    (ParameterSpec, "high"): "float_range.high / integer_range.high",
    (ParameterSpec, "scale"): "float_range.scale",
    (ParameterSpec, "values"): "discrete.values / categorical.values",
    (Condition, "values"): "categories (for categorical parents) / numbers",
}
"""Dataclass fields carried under another name, converted by hand below."""

NOT_ON_THE_WIRE: dict[tuple[type, str], str] = {
    (Trial, "lineage"): "the service's own summary for selection (LineageRecord), stored, never served",
}
"""Dataclass fields with no proto field, each with the reason."""


# --- parameters -------------------------------------------------------------------------------


def parameter_to_proto(spec: ParameterSpec) -> study_pb2.ParameterSpec:
    message = study_pb2.ParameterSpec(name=spec.name, frozen=spec.frozen)
    if spec.type is ParameterType.FLOAT:
        message.float_range.CopyFrom(
            study_pb2.FloatRange(
                low=spec.low, high=spec.high, scale=study_pb2.Scale.ValueType(FIELDS.enum_number(spec.scale))
            )
        )
    elif spec.type is ParameterType.INTEGER:
        message.integer_range.CopyFrom(study_pb2.IntegerRange(low=int(spec.low), high=int(spec.high)))
    elif spec.type is ParameterType.DISCRETE:
        message.discrete.values.extend(float(v) for v in spec.values)
    else:
        message.categorical.values.extend(str(v) for v in spec.values)
    if spec.condition is not None:
        condition = message.condition
        condition.parent = spec.condition.parent
        for value in spec.condition.values:
            if isinstance(value, str):
                condition.categories.append(value)
            else:
                condition.numbers.append(float(value))
    return message


def parameter_from_proto(message: study_pb2.ParameterSpec, field: str) -> ParameterSpec:
    """Unset scale means the ParameterSpec default. Raises InvalidArgumentError when no domain is set."""
    condition = None
    if message.HasField("condition"):
        cond = message.condition
        values: tuple[ParamValue, ...] = (*cond.categories, *cond.numbers)
        condition = Condition(parent=cond.parent, values=values)
    name, frozen = message.name, message.frozen
    domain = message.WhichOneof("domain")
    if domain == "float_range":
        scale = FIELDS.from_message(message.float_range, ParameterSpec, f"{field}.float_range")
        return ParameterSpec(name, ParameterType.FLOAT, frozen=frozen, condition=condition, **scale)
    if domain == "integer_range":
        bounds = message.integer_range
        return ParameterSpec(
            name, ParameterType.INTEGER, low=bounds.low, high=bounds.high, frozen=frozen, condition=condition
        )
    if domain in ("discrete", "categorical"):
        kind = ParameterType.DISCRETE if domain == "discrete" else ParameterType.CATEGORICAL
        values = tuple(getattr(message, domain).values)
        return ParameterSpec(name, kind, values=values, frozen=frozen, condition=condition)
    raise InvalidArgumentError(f"{field}: one of float_range, integer_range, discrete or categorical must be set")


def param_value_to_proto(value: ParamValue) -> trial_pb2.ParameterValue:
    if isinstance(value, str):
        return trial_pb2.ParameterValue(string_value=value)
    if isinstance(value, int) and not isinstance(value, bool):
        return trial_pb2.ParameterValue(int_value=value)
    return trial_pb2.ParameterValue(float_value=float(value))


def param_value_from_proto(message: trial_pb2.ParameterValue) -> ParamValue:
    kind = message.WhichOneof("value")
    if kind == "string_value":
        return message.string_value
    if kind == "int_value":
        return message.int_value
    return message.float_value


# --- study ------------------------------------------------------------------------------------


def study_config_to_proto(config: StudyConfig) -> study_pb2.StudyConfig:
    message = study_pb2.StudyConfig(parameters=[parameter_to_proto(p) for p in config.parameters])
    FIELDS.to_message(config, message, skip=("parameters",))
    return message


def study_config_from_proto(message: study_pb2.StudyConfig) -> StudyConfig:
    """Unset fields keep the dataclass defaults; semantic checks are `validate_config`'s job.

    Raises InvalidArgumentError naming the field for an objective without a goal (the direction of an
    objective is never guessed) or an unknown enum value.
    """
    for i, objective in enumerate(message.objectives):
        if objective.goal not in _GOALS:
            raise InvalidArgumentError(f"config.objectives[{i}].goal: must be MAXIMIZE or MINIMIZE")
    return StudyConfig(
        parameters=tuple(
            parameter_from_proto(p, f"config.parameters[{i}]") for i, p in enumerate(message.parameters)
        ),
        **FIELDS.from_message(message, StudyConfig, "config", skip=("parameters",)),
    )


def study_to_proto(study: Study) -> study_pb2.Study:
    message = study_pb2.Study(config=study_config_to_proto(study.config))
    FIELDS.to_message(study, message, skip=("config",))
    return message


def study_from_proto(message: study_pb2.Study) -> Study:
    return Study(
        config=study_config_from_proto(message.config),
        **FIELDS.from_message(message, Study, "study", skip=("config",)),
    )


# --- trials -----------------------------------------------------------------------------------


def measurement_to_proto(measurement: Measurement) -> trial_pb2.Measurement:
    message = trial_pb2.Measurement()
    FIELDS.to_message(measurement, message)
    return message


def measurement_from_proto(message: trial_pb2.Measurement, field: str = "measurement") -> Measurement:
    """Rejects a negative step or elapsed time; NaN/inf metric values are kept (diverged training)."""
    if message.step < 0:
        raise InvalidArgumentError(f"{field}.step: must be >= 0, got {message.step}")
    if not math.isfinite(message.elapsed_seconds) or message.elapsed_seconds < 0:
        raise InvalidArgumentError(f"{field}.elapsed_seconds: must be a finite number >= 0")
    for name in message.metrics:
        if not name:
            raise InvalidArgumentError(f"{field}.metrics: metric names must be non-empty")
    return Measurement(**FIELDS.from_message(message, Measurement, field))


_TRIAL_BY_HAND = ("hparams", "measurements", "final_measurement", "lineage")


def trial_to_proto(trial: Trial, *, with_measurements: bool = True) -> trial_pb2.Trial:
    message = trial_pb2.Trial(hparams={name: param_value_to_proto(v) for name, v in trial.hparams.items()})
    FIELDS.to_message(trial, message, skip=_TRIAL_BY_HAND)
    if with_measurements:
        message.measurements.extend(measurement_to_proto(m) for m in trial.measurements)
    if trial.final_measurement is not None:
        message.final_measurement.CopyFrom(measurement_to_proto(trial.final_measurement))
    return message


def trial_from_proto(message: trial_pb2.Trial) -> Trial:
    """Raises InvalidArgumentError for an unset or unknown status or an invalid measurement."""
    return Trial(
        hparams={name: param_value_from_proto(v) for name, v in message.hparams.items()},
        measurements=tuple(
            measurement_from_proto(m, f"trial.measurements[{i}]") for i, m in enumerate(message.measurements)
        ),
        final_measurement=(
            measurement_from_proto(message.final_measurement, "trial.final_measurement")
            if message.HasField("final_measurement")
            else None
        ),
        **FIELDS.from_message(message, Trial, "trial", skip=_TRIAL_BY_HAND),
    )


def trial_status_to_proto(status: TrialStatus) -> trial_pb2.TrialStatus.ValueType:
    return trial_pb2.TrialStatus.ValueType(FIELDS.enum_number(status))


def status_from_proto(value: int, field: str) -> TrialStatus:
    if value not in _STATUSES:
        raise InvalidArgumentError(f"{field}: unknown trial status {value}")
    return _STATUSES[value]
