"""`Transaction` on one SQLAlchemy session (SQLite or PostgreSQL).

Reads are a few indexed queries each; the params, measurements and metrics of a set of trials are
loaded with one `IN (...)` query per table (chunked), never one query per trial.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pbt_service.core.types import (
    Measurement,
    ParamValue,
    PopulationView,
    Study,
    StudyConfig,
    StudyState,
    Trial,
    TrialProposal,
    TrialStatus,
)
from pbt_service.store.base import Transaction
from pbt_service.store.config_json import config_from_json, config_to_json
from pbt_service.store.errors import AlreadyExistsError, NotFoundError
from pbt_service.store.models import (
    MeasurementMetricRow,
    MeasurementRow,
    StudyRow,
    TrialParamRow,
    TrialRow,
)

CHUNK = 500
"""Ids per `IN (...)` list: far below SQLite's and PostgreSQL's bound-parameter limits."""

LEASE_EXPIRED = "lease expired"
_LIVE = (TrialStatus.ACTIVE.value, TrialStatus.COMPLETED.value)
_COUNTED = tuple(s.value for s in TrialStatus if s is not TrialStatus.STOPPED)  # an index range, unlike !=
K = TypeVar("K")


class SqlTransaction(Transaction):
    """The Transaction contract over a session owned by `SqlStorage.transaction()`.

    Raises NotFoundError, AlreadyExistsError, and ValueError for arguments that break the
    contract (naive datetimes, a trial that is not ACTIVE, an initiator already used).
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._study_ids: dict[str, int] = {}

    # --- studies ---
    def create_study(self, name: str, config: StudyConfig, now: datetime) -> Study:
        if self._session.scalar(select(StudyRow.id).where(StudyRow.name == name)) is not None:
            raise AlreadyExistsError(f"study {name!r} already exists")
        row = StudyRow(
            name=name,
            config_json=config_to_json(config),
            population_size=config.algorithm.population_size,
            seed=config.algorithm.seed,
            state=StudyState.ACTIVE.value,
            trial_count=0,
            create_time=_utc(now),
        )
        self._session.add(row)
        try:
            self._session.flush()
        except IntegrityError as e:  # a concurrent transaction created it first
            raise AlreadyExistsError(f"study {name!r} already exists") from e
        return _study(row)

    def get_study(self, name: str, *, lock: bool = False) -> Study:
        query = select(StudyRow).where(StudyRow.name == name)
        if lock:
            query = query.with_for_update()
        row = self._session.scalars(query.execution_options(populate_existing=True)).one_or_none()
        if row is None:
            raise NotFoundError(f"study {name!r} not found")
        self._study_ids[name] = row.id
        return _study(row)

    def list_studies(self) -> list[Study]:
        return [_study(row) for row in self._session.scalars(select(StudyRow).order_by(StudyRow.name))]

    def set_study_state(self, name: str, state: StudyState) -> None:
        updated = self._session.scalar(
            update(StudyRow).where(StudyRow.name == name).values(state=state.value).returning(StudyRow.id)
        )
        if updated is None:
            raise NotFoundError(f"study {name!r} not found")

    # --- decisions ---
    def expire_leases(self, study: str, heartbeat_before: datetime, now: datetime) -> list[int]:
        study_id = self._study_id(study)
        cutoff, end = _utc(heartbeat_before), _utc(now)
        rows = self._session.scalars(
            select(TrialRow)
            .where(
                TrialRow.study_id == study_id,
                TrialRow.status == TrialStatus.ACTIVE.value,
                func.coalesce(TrialRow.heartbeat_time, TrialRow.create_time) < cutoff,
            )
            .order_by(TrialRow.number)
            .with_for_update()
        ).all()
        for row in rows:
            self._end(row, TrialStatus.STOPPED, LEASE_EXPIRED, end, None)
        self._session.flush()
        return [row.id for row in rows]

    def population_view(self, study: str, config: StudyConfig) -> PopulationView:
        """See PopulationView. The initiator comes with its measurements; opponents only with their
        final measurement (`measurements` is empty) to keep the view cheap."""
        study_id = self._study_id(study)
        live_zero = self._count(
            TrialRow.study_id == study_id, TrialRow.generation == 0, TrialRow.status.in_(_LIVE)
        )
        counted = self._count(TrialRow.study_id == study_id, TrialRow.status.in_(_COUNTED))
        query = select(TrialRow).where(
            TrialRow.study_id == study_id,
            TrialRow.status == TrialStatus.COMPLETED.value,
            TrialRow.initiated_trial_id.is_(None),
        )
        max_generations = config.algorithm.max_generations
        if max_generations > 0:
            query = query.where(TrialRow.generation < max_generations - 1)
        # initiated_trial_id (NULL in every row here) leads the ORDER BY so that PostgreSQL sees
        # the order of ix_trials_initiator_lookup and reads one entry instead of sorting.
        initiator_row = self._session.scalars(
            query.order_by(TrialRow.initiated_trial_id, TrialRow.generation, TrialRow.number).limit(1)
        ).one_or_none()
        if initiator_row is None:
            return PopulationView(live_in_generation_zero=live_zero, trials_counted=counted)
        generation = initiator_row.generation
        oldest = generation - config.algorithm.opponent_generations + 1
        generation_size = self._count(
            TrialRow.study_id == study_id, TrialRow.generation == generation, TrialRow.status.in_(_LIVE)
        )
        opponent_rows = self._session.scalars(
            select(TrialRow)
            .where(
                TrialRow.study_id == study_id,
                TrialRow.status == TrialStatus.COMPLETED.value,
                TrialRow.generation.between(oldest, generation),
                TrialRow.id != initiator_row.id,
            )
            .order_by(TrialRow.generation, TrialRow.number)
        ).all()
        initiator, *opponents = self._trials(
            [initiator_row, *opponent_rows], study, with_measurements={initiator_row.id}
        )
        return PopulationView(
            live_in_generation_zero=live_zero,
            trials_counted=counted,
            initiator=initiator,
            initiator_generation_size=generation_size,
            opponents=tuple(opponents),
        )

    def create_trial(self, study: str, proposal: TrialProposal, worker_id: str, now: datetime) -> Trial:
        """Also raises NotFoundError for an unknown initiator or parent, and ValueError for an
        initiator that is not a COMPLETED trial of the study free to initiate, or for a
        hyperparameter value that is not a finite float, an int or a str."""
        created = _utc(now)
        params = [_param_row(name, value) for name, value in proposal.hparams.items()]
        counter = self._session.execute(
            update(StudyRow)
            .where(StudyRow.name == study)
            .values(trial_count=StudyRow.trial_count + 1)
            .returning(StudyRow.id, StudyRow.trial_count)
        ).one_or_none()
        if counter is None:
            raise NotFoundError(f"study {study!r} not found")
        study_id, number = counter
        if proposal.initiator_id is not None:
            self._check_initiator(study_id, proposal.initiator_id)
        if proposal.parent_trial_id is not None:
            self._require_trial(proposal.parent_trial_id, "parent trial")
        row = TrialRow(
            study_id=study_id,
            number=number,
            generation=proposal.generation,
            status=TrialStatus.ACTIVE.value,
            worker_id=worker_id,
            warm_start_checkpoint_path=proposal.warm_start_checkpoint_path,
            parent_trial_id=proposal.parent_trial_id,
            initiator_parent_trial_id=proposal.initiator_id,
            initiated_trial_id=None,
            stop_requested=False,
            status_message="",
            create_time=created,
            heartbeat_time=created,
        )
        self._session.add(row)
        self._session.flush()
        for param in params:
            param.trial_id = row.id
        self._session.add_all(params)
        if proposal.initiator_id is not None:
            self._session.execute(
                update(TrialRow).where(TrialRow.id == proposal.initiator_id).values(initiated_trial_id=row.id)
            )
        self._session.flush()
        return _trial(row, study, dict(proposal.hparams), (), None)

    def active_trials(self, study: str, worker_id: str | None = None) -> list[Trial]:
        query = select(TrialRow).where(
            TrialRow.study_id == self._study_id(study), TrialRow.status == TrialStatus.ACTIVE.value
        )
        if worker_id is not None:
            query = query.where(TrialRow.worker_id == worker_id)
        rows = self._session.scalars(query.order_by(TrialRow.number)).all()
        return self._trials(rows, study, with_measurements=True)

    def completed_trials(self, study: str, min_generation: int, max_generation: int) -> list[Trial]:
        rows = self._session.scalars(
            select(TrialRow)
            .where(
                TrialRow.study_id == self._study_id(study),
                TrialRow.status == TrialStatus.COMPLETED.value,
                TrialRow.generation.between(min_generation, max_generation),
            )
            .order_by(TrialRow.generation, TrialRow.number)
        ).all()
        return self._trials(rows, study, with_measurements=True)

    # --- trials ---
    def get_trial(self, trial_id: int, *, lock: bool = False) -> Trial:
        query = (
            select(TrialRow, StudyRow.name)
            .join(StudyRow, StudyRow.id == TrialRow.study_id)
            .where(TrialRow.id == trial_id)
            .execution_options(populate_existing=True)
        )
        if lock:
            query = query.with_for_update(of=TrialRow)
        found = self._session.execute(query).one_or_none()
        if found is None:
            raise NotFoundError(f"trial {trial_id} not found")
        row, study = found
        (trial,) = self._trials([row], study, with_measurements=True)
        return trial

    def add_measurement(self, trial_id: int, measurement: Measurement, now: datetime) -> bool:
        created = _utc(now)
        self._require_trial(trial_id)
        if self._insert_measurement(trial_id, measurement, created) is None:
            return False
        self._session.execute(update(TrialRow).where(TrialRow.id == trial_id).values(heartbeat_time=created))
        return True

    def heartbeat(self, trial_id: int, now: datetime) -> None:
        updated = self._session.scalar(
            update(TrialRow)
            .where(TrialRow.id == trial_id)
            .values(heartbeat_time=_utc(now))
            .returning(TrialRow.id)
        )
        if updated is None:
            raise NotFoundError(f"trial {trial_id} not found")

    def request_stop(self, trial_ids: Sequence[int]) -> None:
        """Ids that do not exist are ignored."""
        for chunk in _chunks(sorted(set(trial_ids))):
            self._session.execute(update(TrialRow).where(TrialRow.id.in_(chunk)).values(stop_requested=True))

    def finish_trial(
        self,
        trial_id: int,
        status: TrialStatus,
        final_measurement: Measurement | None,
        message: str,
        now: datetime,
    ) -> Trial:
        """Raises NotFoundError, and ValueError when `status` is ACTIVE, the trial is not ACTIVE, or
        a COMPLETED trial has no measurement to be final. A given `final_measurement` is stored
        for STOPPED and FAILED too; without one they keep no final measurement."""
        if status is TrialStatus.ACTIVE:
            raise ValueError("finish_trial needs COMPLETED, STOPPED or FAILED, got ACTIVE")
        ended = _utc(now)
        row = self._session.scalars(
            select(TrialRow)
            .where(TrialRow.id == trial_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one_or_none()
        if row is None:
            raise NotFoundError(f"trial {trial_id} not found")
        if row.status != TrialStatus.ACTIVE.value:
            raise ValueError(f"trial {trial_id} is {row.status}, not active")
        final_id: int | None = None
        if final_measurement is not None:
            final_id = self._session.scalar(
                select(MeasurementRow.id).where(
                    MeasurementRow.trial_id == trial_id, MeasurementRow.step == final_measurement.step
                )
            )
            if final_id is None:
                final_id = self._insert_measurement(trial_id, final_measurement, ended)
        elif status is TrialStatus.COMPLETED:
            final_id = self._session.scalar(
                select(MeasurementRow.id)
                .where(MeasurementRow.trial_id == trial_id)
                .order_by(MeasurementRow.step.desc())
                .limit(1)
            )
            if final_id is None:
                raise ValueError(f"trial {trial_id} has no measurement to complete with")
        self._end(row, status, message, ended, final_id)
        self._session.flush()
        return self.get_trial(trial_id)

    def list_trials(
        self,
        study: str,
        *,
        statuses: Sequence[TrialStatus] = (),
        generation: int | None = None,
        after_number: int = 0,
        limit: int = 100,
        with_measurements: bool = True,
    ) -> list[Trial]:
        """Raises NotFoundError for an unknown study and ValueError for a negative limit. Without
        measurements, each trial still carries its final measurement."""
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        query = select(TrialRow).where(
            TrialRow.study_id == self._study_id(study), TrialRow.number > after_number
        )
        if statuses:
            query = query.where(TrialRow.status.in_([s.value for s in statuses]))
        if generation is not None:
            query = query.where(TrialRow.generation == generation)
        rows = self._session.scalars(query.order_by(TrialRow.number).limit(limit)).all()
        return self._trials(rows, study, with_measurements=with_measurements)

    # --- helpers ---
    def _study_id(self, name: str) -> int:
        study_id = self._study_ids.get(name)
        if study_id is None:
            study_id = self._session.scalar(select(StudyRow.id).where(StudyRow.name == name))
            if study_id is None:
                raise NotFoundError(f"study {name!r} not found")
            self._study_ids[name] = study_id
        return study_id

    def _require_trial(self, trial_id: int, what: str = "trial") -> None:
        if self._session.scalar(select(TrialRow.id).where(TrialRow.id == trial_id)) is None:
            raise NotFoundError(f"{what} {trial_id} not found")

    def _count(self, *conditions: Any) -> int:
        return self._session.scalar(select(func.count()).select_from(TrialRow).where(*conditions)) or 0

    def _check_initiator(self, study_id: int, initiator_id: int) -> None:
        """Locks the initiator's row; raises unless it is a COMPLETED trial of the study that has
        not initiated a reproduction."""
        found = self._session.execute(
            select(TrialRow.study_id, TrialRow.status, TrialRow.initiated_trial_id)
            .where(TrialRow.id == initiator_id)
            .with_for_update()
        ).one_or_none()
        if found is None:
            raise NotFoundError(f"initiator trial {initiator_id} not found")
        owner, status, initiated = found
        if owner != study_id or status != TrialStatus.COMPLETED.value or initiated is not None:
            raise ValueError(
                f"trial {initiator_id} cannot initiate: study id {owner} (want {study_id}), "
                f"status {status}, initiated trial {initiated}"
            )

    def _end(
        self, row: TrialRow, status: TrialStatus, message: str, now: datetime, final_id: int | None
    ) -> None:
        row.status = status.value
        row.status_message = message
        row.end_time = now
        row.final_measurement_id = final_id
        if status is not TrialStatus.COMPLETED and row.initiator_parent_trial_id is not None:
            # Hand the reproduction back: the initiator initiates again.
            self._session.execute(
                update(TrialRow)
                .where(
                    TrialRow.id == row.initiator_parent_trial_id,
                    TrialRow.initiated_trial_id == row.id,
                )
                .values(initiated_trial_id=None)
            )

    def _insert_measurement(self, trial_id: int, measurement: Measurement, now: datetime) -> int | None:
        """Inserts a measurement unless its step exists (atomically); returns its id or None."""
        insert = postgresql.insert if self._session.get_bind().dialect.name == "postgresql" else sqlite.insert
        measurement_id = self._session.scalar(
            insert(MeasurementRow)
            .values(
                trial_id=trial_id,
                step=measurement.step,
                checkpoint_path=measurement.checkpoint_path,
                elapsed_seconds=measurement.elapsed_seconds,
                create_time=_utc(measurement.create_time) if measurement.create_time else now,
            )
            .on_conflict_do_nothing(index_elements=["trial_id", "step"])
            .returning(MeasurementRow.id)
        )
        if measurement_id is not None and measurement.metrics:
            self._session.add_all(
                MeasurementMetricRow(measurement_id=measurement_id, name=name, value=float(value))
                for name, value in measurement.metrics.items()
            )
            self._session.flush()
        return measurement_id

    def _trials(
        self, rows: Sequence[TrialRow], study: str, *, with_measurements: bool | Collection[int]
    ) -> list[Trial]:
        """Domain trials for `rows`, with params and measurements loaded in batches.

        `with_measurements` is a bool for all rows or the ids of the rows that get all their
        measurements; the others carry only their final measurement.
        """
        if not rows:
            return []
        ids = [row.id for row in rows]
        full = set(ids) if with_measurements is True else set(with_measurements or ())
        params: dict[int, dict[str, ParamValue]] = {i: {} for i in ids}
        for param in self._in(TrialParamRow, TrialParamRow.trial_id, ids):
            params[param.trial_id][param.name] = _param_value(param)
        final_ids = [
            r.final_measurement_id for r in rows if r.id not in full and r.final_measurement_id is not None
        ]
        measurement_rows = self._in(MeasurementRow, MeasurementRow.trial_id, [i for i in ids if i in full])
        measurement_rows += self._in(MeasurementRow, MeasurementRow.id, final_ids)
        metrics: dict[int, dict[str, float]] = {m.id: {} for m in measurement_rows}
        for metric in self._in(MeasurementMetricRow, MeasurementMetricRow.measurement_id, list(metrics)):
            metrics[metric.measurement_id][metric.name] = metric.value
        by_id = {m.id: _measurement(m, metrics[m.id]) for m in measurement_rows}
        by_trial: dict[int, list[MeasurementRow]] = {i: [] for i in ids}
        for m in measurement_rows:
            if m.trial_id in full:
                by_trial[m.trial_id].append(m)
        return [
            _trial(
                row,
                study,
                params[row.id],
                (by_id[m.id] for m in sorted(by_trial[row.id], key=lambda m: m.step)),
                by_id.get(row.final_measurement_id) if row.final_measurement_id is not None else None,
            )
            for row in rows
        ]

    def _in(self, entity: type[K], column: Any, ids: Sequence[int]) -> list[K]:
        found: list[K] = []
        for chunk in _chunks(ids):
            found.extend(self._session.scalars(select(entity).where(column.in_(chunk))))
        return found


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def _utc(value: datetime) -> datetime:
    """Raises ValueError for a naive datetime: the store never guesses a timezone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"datetime {value.isoformat()} has no timezone; pass an aware UTC time")
    return value.astimezone(timezone.utc)


def _param_row(name: str, value: ParamValue) -> TrialParamRow:
    if isinstance(value, bool):
        raise ValueError(f"hyperparameter {name!r}: bool is not a parameter value, use int or str")
    if isinstance(value, int):
        return TrialParamRow(name=name, kind="int", int_value=value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"hyperparameter {name!r} must be finite, got {value}")
        return TrialParamRow(name=name, kind="float", float_value=value)
    if isinstance(value, str):
        return TrialParamRow(name=name, kind="str", string_value=value)
    raise ValueError(f"hyperparameter {name!r} has unsupported type {type(value).__name__}")


def _param_value(row: TrialParamRow) -> ParamValue:
    if row.kind == "int" and row.int_value is not None:
        return int(row.int_value)
    if row.kind == "float" and row.float_value is not None:
        return float(row.float_value)
    if row.kind == "str" and row.string_value is not None:
        return row.string_value
    raise ValueError(f"trial {row.trial_id} parameter {row.name!r} of kind {row.kind!r} has no value")


def _study(row: StudyRow) -> Study:
    return Study(
        name=row.name,
        config=config_from_json(row.config_json),
        state=StudyState(row.state),
        trial_count=row.trial_count,
        create_time=row.create_time,
    )


def _measurement(row: MeasurementRow, metrics: dict[str, float]) -> Measurement:
    return Measurement(
        step=row.step,
        metrics=metrics,
        checkpoint_path=row.checkpoint_path,
        elapsed_seconds=row.elapsed_seconds,
        create_time=row.create_time,
    )


def _trial(
    row: TrialRow,
    study: str,
    hparams: dict[str, ParamValue],
    measurements: Iterable[Measurement],
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
        measurements=tuple(measurements),
        final_measurement=final,
        worker_id=row.worker_id,
        stop_requested=row.stop_requested,
        status_message=row.status_message,
        initiated_trial_id=row.initiated_trial_id,
        create_time=row.create_time,
        heartbeat_time=row.heartbeat_time,
        end_time=row.end_time,
    )
