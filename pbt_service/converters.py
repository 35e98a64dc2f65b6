"""Proto <-> domain conversion: the only module that knows both.

Each message has a `*_to_proto` / `*_from_proto` pair; `from_proto` raises `ValueError` naming the
field when a message cannot be expressed in the domain (the servicer maps it to INVALID_ARGUMENT).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from pbt_service.api.v1 import study_pb2, trial_pb2
from pbt_service.core.types import (
    AlgorithmConfig,
    Comparison,
    Condition,
    Goal,
    Measurement,
    MedianStopping,
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

_GOALS: dict[int, Goal] = {study_pb2.MAXIMIZE: Goal.MAXIMIZE, study_pb2.MINIMIZE: Goal.MINIMIZE}
_COMPARISONS: dict[int, Comparison] = {
    study_pb2.FITNESS_COMPARISON_UNSPECIFIED: Comparison.LEXICOGRAPHIC,
    study_pb2.LEXICOGRAPHIC: Comparison.LEXICOGRAPHIC,
    study_pb2.PARETO: Comparison.PARETO,
}
_STATUSES: dict[int, TrialStatus] = {
    trial_pb2.ACTIVE: TrialStatus.ACTIVE,
    trial_pb2.COMPLETED: TrialStatus.COMPLETED,
    trial_pb2.STOPPED: TrialStatus.STOPPED,
    trial_pb2.FAILED: TrialStatus.FAILED,
}
_STUDY_STATES: dict[int, StudyState] = {
    study_pb2.STUDY_ACTIVE: StudyState.ACTIVE,
    study_pb2.STUDY_DONE: StudyState.DONE,
}
DEFAULTS = AlgorithmConfig()


def _invert(table: Mapping[int, object]) -> dict[Any, Any]:
    """Domain enum -> proto enum number (the first proto value wins where two map to one)."""
    inverted: dict[Any, Any] = {}
    for key, value in table.items():
        inverted.setdefault(value, key)
    return inverted


_GOALS_TO = _invert(_GOALS)
_COMPARISONS_TO: dict[Comparison, Any] = {
    Comparison.LEXICOGRAPHIC: study_pb2.LEXICOGRAPHIC,
    Comparison.PARETO: study_pb2.PARETO,
}
_STATUSES_TO = _invert(_STATUSES)
_STUDY_STATES_TO = _invert(_STUDY_STATES)


# --- timestamps -------------------------------------------------------------------------------


def timestamp_to_proto(value: datetime | None) -> Timestamp:
    stamp = Timestamp()
    if value is not None:
        stamp.FromDatetime(value.astimezone(timezone.utc))
    return stamp


def timestamp_from_proto(stamp: Timestamp) -> datetime | None:
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    return stamp.ToDatetime(tzinfo=timezone.utc)


# --- parameters -------------------------------------------------------------------------------


def parameter_to_proto(spec: ParameterSpec) -> study_pb2.ParameterSpec:
    message = study_pb2.ParameterSpec(name=spec.name, frozen=spec.frozen)
    if spec.type is ParameterType.FLOAT:
        scale = study_pb2.SCALE_LOG if spec.scale is Scale.LOG else study_pb2.SCALE_LINEAR
        message.float_range.CopyFrom(study_pb2.FloatRange(low=spec.low, high=spec.high, scale=scale))
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
    domain = message.WhichOneof("domain")
    condition = None
    if message.HasField("condition"):
        cond = message.condition
        values: tuple[ParamValue, ...] = (*cond.categories, *cond.numbers)
        condition = Condition(parent=cond.parent, values=values)
    common = {"name": message.name, "frozen": message.frozen, "condition": condition}
    if domain == "float_range":
        scale = Scale.LOG if message.float_range.scale == study_pb2.SCALE_LOG else Scale.LINEAR
        return ParameterSpec(
            type=ParameterType.FLOAT, low=message.float_range.low, high=message.float_range.high,
            scale=scale, **common,  # type: ignore[arg-type]
        )
    if domain == "integer_range":
        return ParameterSpec(
            type=ParameterType.INTEGER, low=message.integer_range.low, high=message.integer_range.high,
            **common,  # type: ignore[arg-type]
        )
    if domain == "discrete":
        return ParameterSpec(
            type=ParameterType.DISCRETE, values=tuple(message.discrete.values), **common  # type: ignore[arg-type]
        )
    if domain == "categorical":
        return ParameterSpec(
            type=ParameterType.CATEGORICAL, values=tuple(message.categorical.values), **common  # type: ignore[arg-type]
        )
    raise ValueError(f"{field}: one of float_range, integer_range, discrete or categorical must be set")


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
    algo = config.algorithm
    return study_pb2.StudyConfig(
        parameters=[parameter_to_proto(p) for p in config.parameters],
        objectives=[study_pb2.Objective(metric=o.metric, goal=_GOALS_TO[o.goal]) for o in config.objectives],
        comparison=_COMPARISONS_TO[config.comparison],
        algorithm=study_pb2.AlgorithmConfig(
            population_size=algo.population_size,
            opponent_generations=algo.opponent_generations,
            perturbation_factors=list(algo.perturbation_factors),
            max_generations=algo.max_generations,
            max_trials=algo.max_trials,
            steps_per_trial=algo.steps_per_trial,
            seed=algo.seed,
            median_stopping=study_pb2.MedianStoppingRule(
                enabled=algo.median_stopping.enabled,
                min_completed_trials=algo.median_stopping.min_completed_trials,
                min_measurements=algo.median_stopping.min_measurements,
            ),
        ),
    )


def study_config_from_proto(message: study_pb2.StudyConfig) -> StudyConfig:
    """Fills defaults for unset fields (0 / empty); semantic checks are `validate_config`'s job."""
    objectives = []
    for i, objective in enumerate(message.objectives):
        if objective.goal not in _GOALS:
            raise ValueError(f"config.objectives[{i}].goal: must be MAXIMIZE or MINIMIZE")
        objectives.append(Objective(metric=objective.metric, goal=_GOALS[objective.goal]))
    if message.comparison not in _COMPARISONS:
        raise ValueError(f"config.comparison: unknown value {message.comparison}")
    algo = message.algorithm
    stopping = algo.median_stopping
    return StudyConfig(
        parameters=tuple(
            parameter_from_proto(p, f"config.parameters[{i}]") for i, p in enumerate(message.parameters)
        ),
        objectives=tuple(objectives),
        comparison=_COMPARISONS[message.comparison],
        algorithm=AlgorithmConfig(
            population_size=algo.population_size or DEFAULTS.population_size,
            opponent_generations=algo.opponent_generations or DEFAULTS.opponent_generations,
            perturbation_factors=tuple(algo.perturbation_factors) or DEFAULTS.perturbation_factors,
            max_generations=algo.max_generations,
            max_trials=algo.max_trials,
            steps_per_trial=algo.steps_per_trial,
            seed=algo.seed,
            median_stopping=MedianStopping(
                enabled=stopping.enabled,
                min_completed_trials=stopping.min_completed_trials or MedianStopping().min_completed_trials,
                min_measurements=stopping.min_measurements or MedianStopping().min_measurements,
            ),
        ),
    )


def study_to_proto(study: Study) -> study_pb2.Study:
    return study_pb2.Study(
        name=study.name,
        config=study_config_to_proto(study.config),
        state=_STUDY_STATES_TO[study.state],
        trial_count=study.trial_count,
        create_time=timestamp_to_proto(study.create_time),
    )


def study_from_proto(message: study_pb2.Study) -> Study:
    return Study(
        name=message.name,
        config=study_config_from_proto(message.config),
        state=_STUDY_STATES.get(message.state, StudyState.ACTIVE),
        trial_count=message.trial_count,
        create_time=timestamp_from_proto(message.create_time),
    )


# --- trials -----------------------------------------------------------------------------------


def measurement_to_proto(measurement: Measurement) -> trial_pb2.Measurement:
    return trial_pb2.Measurement(
        step=measurement.step,
        metrics=dict(measurement.metrics),
        checkpoint_path=measurement.checkpoint_path,
        elapsed_seconds=measurement.elapsed_seconds,
        create_time=timestamp_to_proto(measurement.create_time),
    )


def measurement_from_proto(message: trial_pb2.Measurement, field: str = "measurement") -> Measurement:
    """Rejects a negative step or elapsed time; NaN/inf metric values are kept (diverged training)."""
    if message.step < 0:
        raise ValueError(f"{field}.step: must be >= 0, got {message.step}")
    if not math.isfinite(message.elapsed_seconds) or message.elapsed_seconds < 0:
        raise ValueError(f"{field}.elapsed_seconds: must be a finite number >= 0")
    for name in message.metrics:
        if not name:
            raise ValueError(f"{field}.metrics: metric names must be non-empty")
    return Measurement(
        step=message.step,
        metrics=dict(message.metrics),
        checkpoint_path=message.checkpoint_path,
        elapsed_seconds=message.elapsed_seconds,
        create_time=timestamp_from_proto(message.create_time),
    )


def trial_to_proto(trial: Trial, *, with_measurements: bool = True) -> trial_pb2.Trial:
    message = trial_pb2.Trial(
        id=trial.id,
        study=trial.study,
        number=trial.number,
        generation=trial.generation,
        status=_STATUSES_TO[trial.status],
        hparams={name: param_value_to_proto(v) for name, v in trial.hparams.items()},
        warm_start_checkpoint_path=trial.warm_start_checkpoint_path,
        parent_trial_id=trial.parent_trial_id or 0,
        initiator_parent_trial_id=trial.initiator_parent_trial_id or 0,
        worker_id=trial.worker_id,
        stop_requested=trial.stop_requested,
        status_message=trial.status_message,
        create_time=timestamp_to_proto(trial.create_time),
        heartbeat_time=timestamp_to_proto(trial.heartbeat_time),
        end_time=timestamp_to_proto(trial.end_time),
    )
    if with_measurements:
        message.measurements.extend(measurement_to_proto(m) for m in trial.measurements)
    if trial.final_measurement is not None:
        message.final_measurement.CopyFrom(measurement_to_proto(trial.final_measurement))
    return message


def trial_from_proto(message: trial_pb2.Trial) -> Trial:
    return Trial(
        id=message.id,
        study=message.study,
        number=message.number,
        generation=message.generation,
        status=_STATUSES.get(message.status, TrialStatus.ACTIVE),
        hparams={name: param_value_from_proto(v) for name, v in message.hparams.items()},
        warm_start_checkpoint_path=message.warm_start_checkpoint_path,
        parent_trial_id=message.parent_trial_id or None,
        initiator_parent_trial_id=message.initiator_parent_trial_id or None,
        measurements=tuple(measurement_from_proto(m) for m in message.measurements),
        final_measurement=(
            measurement_from_proto(message.final_measurement) if message.HasField("final_measurement") else None
        ),
        worker_id=message.worker_id,
        stop_requested=message.stop_requested,
        status_message=message.status_message,
        create_time=timestamp_from_proto(message.create_time),
        heartbeat_time=timestamp_from_proto(message.heartbeat_time),
        end_time=timestamp_from_proto(message.end_time),
    )


def trial_status_to_proto(status: TrialStatus) -> trial_pb2.TrialStatus.ValueType:
    return trial_pb2.TrialStatus.ValueType(_STATUSES_TO[status])


def status_from_proto(value: int, field: str) -> TrialStatus:
    if value not in _STATUSES:
        raise ValueError(f"{field}: unknown trial status {value}")
    return _STATUSES[value]
