"""Rows to domain objects: the tables as Core objects, and batch loading of a set of trials.

The params and measurements (with their metrics, joined) of a set of trials are loaded with one
`IN (...)` query per kind (chunked), never one query per trial. Everything here works on a Core
`Connection`: the ORM's identity map and unit of work cost more than these reads need.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, TypeAlias, Unpack

from sqlalchemy import Connection, Row, Table, bindparam, select

from pbt_service.core.types import (
    CheckpointState,
    Measurement,
    ParamValue,
    Study,
    StudyState,
    Trial,
    TrialStatus,
)
from pbt_service.store.config_json import config_from_json
from pbt_service.store.lineage_json import lineage_from_json
from pbt_service.store.models import (
    MeasurementMetricRow,
    MeasurementRow,
    StudyRow,
    TrialParamRow,
    TrialRow,
)

AnyRow: TypeAlias = Row[Unpack[tuple[Any, ...]]]
"""A result row of any shape (SQLAlchemy types rows by their columns)."""


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


STUDIES = _table(StudyRow)
TRIALS = _table(TrialRow)
PARAMS = _table(TrialParamRow)
MEASUREMENTS = _table(MeasurementRow)
METRICS = _table(MeasurementMetricRow)

CHUNK = 500
"""Ids per `IN (...)` list: far below SQLite's and PostgreSQL's bound-parameter limits."""

PARAMS_OF = select(PARAMS).where(PARAMS.c.trial_id.in_(bindparam("p_ids", expanding=True)))

_MEASUREMENTS_WITH_METRICS = select(
    MEASUREMENTS.c.id,
    MEASUREMENTS.c.trial_id,
    MEASUREMENTS.c.step,
    MEASUREMENTS.c.checkpoint_path,
    MEASUREMENTS.c.elapsed_seconds,
    MEASUREMENTS.c.create_time,
    MEASUREMENTS.c.checkpoint_state,
    METRICS.c.name,
    METRICS.c.value,
).select_from(MEASUREMENTS.outerjoin(METRICS, METRICS.c.measurement_id == MEASUREMENTS.c.id))
MEASUREMENTS_OF_TRIALS = _MEASUREMENTS_WITH_METRICS.where(
    MEASUREMENTS.c.trial_id.in_(bindparam("p_ids", expanding=True))
)
MEASUREMENTS_BY_ID = _MEASUREMENTS_WITH_METRICS.where(MEASUREMENTS.c.id.in_(bindparam("p_ids", expanding=True)))


def chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def utc(value: datetime) -> datetime:
    """Raises ValueError for a naive datetime: the store never guesses a timezone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"datetime {value.isoformat()} has no timezone; pass an aware UTC time")
    return value.astimezone(timezone.utc)


def study_from_row(row: AnyRow) -> Study:
    """A paused study that is not done reads as PAUSED (`paused` is a flag beside `state`)."""
    state = StudyState(row.state)
    return Study(
        name=row.name,
        config=config_from_json(row.config_json),
        state=StudyState.PAUSED if row.paused and state is StudyState.ACTIVE else state,
        trial_count=row.trial_count,
        create_time=row.create_time,
    )


def param_values(name: str, value: ParamValue) -> dict[str, Any]:
    """The trial_params columns for one value. Raises ValueError for a bool, a non-finite float
    or another type."""
    if isinstance(value, bool):
        raise ValueError(f"hyperparameter {name!r}: bool is not a parameter value, use int or str")
    if isinstance(value, int):
        return {"name": name, "kind": "int", "int_value": value, "float_value": None, "string_value": None}
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"hyperparameter {name!r} must be finite, got {value}")
        return {"name": name, "kind": "float", "int_value": None, "float_value": value, "string_value": None}
    if isinstance(value, str):
        return {"name": name, "kind": "str", "int_value": None, "float_value": None, "string_value": value}
    raise ValueError(f"hyperparameter {name!r} has unsupported type {type(value).__name__}")


def _param_value(row: AnyRow) -> ParamValue:
    if row.kind == "int" and row.int_value is not None:
        return int(row.int_value)
    if row.kind == "float" and row.float_value is not None:
        return float(row.float_value)
    if row.kind == "str" and row.string_value is not None:
        return str(row.string_value)
    raise ValueError(f"trial {row.trial_id} parameter {row.name!r} of kind {row.kind!r} has no value")


def load_trials(
    connection: Connection, rows: Sequence[AnyRow], study: str, *, full: bool | Collection[int]
) -> list[Trial]:
    """Domain trials for rows of `TRIALS`, with params and measurements loaded in batches.

    `full` is a bool for all rows or the ids of the rows that get all their measurements; the
    others carry only their final measurement.
    """
    if not rows:
        return []
    ids = [row.id for row in rows]
    full_ids = set(ids) if full is True else set(full or ())
    params = _params(connection, ids)
    finals = [r.final_measurement_id for r in rows if r.id not in full_ids and r.final_measurement_id]
    measured: dict[int, AnyRow] = {}
    metrics: dict[int, dict[str, float]] = {}
    for query, wanted in ((MEASUREMENTS_OF_TRIALS, sorted(full_ids)), (MEASUREMENTS_BY_ID, finals)):
        for chunk in chunks(wanted):
            for m in connection.execute(query, {"p_ids": list(chunk)}):
                measured.setdefault(m.id, m)
                values = metrics.setdefault(m.id, {})
                if m.name is not None:
                    values[m.name] = m.value
    by_id = {i: _measurement(m, metrics[i]) for i, m in measured.items()}
    by_trial: dict[int, list[AnyRow]] = {i: [] for i in full_ids}
    for m in measured.values():
        if m.trial_id in full_ids:
            by_trial[m.trial_id].append(m)
    return [
        _trial(
            row,
            study,
            params[row.id],
            tuple(by_id[m.id] for m in sorted(by_trial.get(row.id, ()), key=lambda m: m.step)),
            by_id.get(row.final_measurement_id) if row.final_measurement_id is not None else None,
        )
        for row in rows
    ]


def trial_from_joined_rows(rows: Sequence[AnyRow], study: str) -> Trial:
    """One trial from the rows of `sql_queries.opponent_at` or `view_head` (a row per metric × param pair):
    its params and its final measurement only."""
    metrics: dict[str, float] = {}
    params: dict[str, ParamValue] = {}
    for row in rows:
        if row.m_name is not None:
            metrics[row.m_name] = row.m_value
        if row.kind is not None:
            params[row.name] = _param_value(row)
    row = rows[0]
    final = (
        None
        if row.m_step is None
        else Measurement(
            row.m_step, metrics, row.m_checkpoint_path, row.m_elapsed_seconds, row.m_create_time,
            CheckpointState(row.m_checkpoint_state),
        )
    )
    return _trial(row, study, params, (), final)


def _params(connection: Connection, ids: Sequence[int]) -> dict[int, dict[str, ParamValue]]:
    params: dict[int, dict[str, ParamValue]] = {i: {} for i in ids}
    for chunk in chunks(ids):
        for param in connection.execute(PARAMS_OF, {"p_ids": list(chunk)}):
            params[param.trial_id][param.name] = _param_value(param)
    return params


def _measurement(row: AnyRow, metrics: dict[str, float]) -> Measurement:
    return Measurement(
        step=row.step,
        metrics=metrics,
        checkpoint_path=row.checkpoint_path,
        elapsed_seconds=row.elapsed_seconds,
        create_time=row.create_time,
        checkpoint_state=CheckpointState(row.checkpoint_state),
    )


def _trial(
    row: AnyRow,
    study: str,
    hparams: dict[str, ParamValue],
    measurements: tuple[Measurement, ...],
    final: Measurement | None,
) -> Trial:
    return Trial(
        id=row.id,
        study=study,
        number=row.number,
        generation=row.generation,
        status=TrialStatus(row.status),
        hparams=hparams,
        warm_start_checkpoint_path=row.warm_start_checkpoint_path,
        parent_trial_id=row.parent_trial_id,
        initiator_parent_trial_id=row.initiator_parent_trial_id,
        measurements=measurements,
        final_measurement=final,
        worker_id=row.worker_id,
        stop_requested=row.stop_requested,
        status_message=row.status_message,
        initiated_trial_id=row.initiated_trial_id,
        create_time=row.create_time,
        heartbeat_time=row.heartbeat_time,
        end_time=row.end_time,
        steps=row.steps,
        lineage=lineage_from_json(row.lineage_json),
    )
