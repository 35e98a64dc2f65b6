"""`Transaction` on one SQLAlchemy Core connection (SQLite or PostgreSQL).

Every read is a few indexed queries whose cost does not grow with the study's history (see
`population_view`); row locks are `FOR NO KEY UPDATE`, which, unlike `FOR UPDATE`, does not block
the foreign-key checks of rows that merely reference the locked one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, overload

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from pbt_service.core import selection
from pbt_service.core.access import Role, TokenRecord
from pbt_service.core.types import (
    ExploreStrategy,
    Measurement,
    PopulationView,
    Study,
    StudyConfig,
    StudyState,
    Trial,
    TrialProposal,
    TrialStatus,
)
from pbt_service.store import sql_access
from pbt_service.store import sql_queries as q
from pbt_service.store.base import LEASE_EXPIRED, CollectionView, SuggestionHead, Transaction, TrialState
from pbt_service.store.config_json import config_from_json, config_to_json
from pbt_service.store.errors import AlreadyExistsError, NotFoundError, TrialFullError, TrialStateError
from pbt_service.store.lineage_json import lineage_to_json
from pbt_service.store.sql_queries import ACTIVE, COMPLETED
from pbt_service.store.sql_rows import (
    CHUNK,
    MEASUREMENTS,
    METRICS,
    PARAMS,
    STUDIES,
    TRIALS,
    AnyRow,
    chunks,
    load_trials,
    param_values,
    study_from_row,
    trial_from_joined_rows,
    utc,
)

NO_LIMIT = 2**31 - 1
"""A measurement limit that never binds (a final measurement added by CompleteTrial)."""


class SqlTransaction(Transaction):
    """The Transaction contract over a connection whose transaction `SqlStorage` owns.

    Raises NotFoundError, AlreadyExistsError, and ValueError for arguments that break the
    contract (naive datetimes, a trial that is not ACTIVE, an initiator already used).
    """

    def __init__(self, connection: Connection) -> None:
        self._db = connection
        self._study_ids: dict[str, int] = {}

    # --- studies ---
    def create_study(self, name: str, config: StudyConfig, now: datetime) -> Study:
        if self._db.scalar(select(STUDIES.c.id).where(STUDIES.c.name == name)) is not None:
            raise AlreadyExistsError(f"study {name!r} already exists")
        values = {
            "name": name,
            "config_json": config_to_json(config),
            "state": StudyState.ACTIVE.value,
            "trial_count": 0,
            "stopped_count": 0,
            "create_time": utc(now),
        }
        try:
            self._db.execute(insert(STUDIES).values(values))
        except IntegrityError as e:  # a concurrent transaction created it first
            raise AlreadyExistsError(f"study {name!r} already exists") from e
        return Study(name=name, config=config, create_time=utc(now))

    def get_study(self, name: str, *, lock: bool = False) -> Study:
        row = self._db.execute(q.lock_study if lock else q.study_by_name, {"p_name": name}).one_or_none()
        if row is None:
            raise NotFoundError(f"study {name!r} not found")
        self._study_ids[name] = row.id
        return study_from_row(row)

    def lock_study_for_suggestion(self, name: str, worker_id: str, heartbeat_before: datetime) -> SuggestionHead:
        row = self._db.execute(
            q.lock_study_for_suggestion, {"p_name": name, "p_worker": worker_id, "p_cutoff": utc(heartbeat_before)}
        ).one_or_none()
        if row is None:
            raise NotFoundError(f"study {name!r} not found")
        self._study_ids[name] = row.id
        return SuggestionHead(study_from_row(row), bool(row.has_lapsed), bool(row.holds_trials))

    def list_studies(self, *, after_name: str = "", limit: int | None = None) -> list[Study]:
        """Raises ValueError for a negative limit."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        query = select(STUDIES).where(STUDIES.c.name > after_name).order_by(STUDIES.c.name).limit(limit)
        return [study_from_row(row) for row in self._db.execute(query)]

    def set_study_state(self, name: str, state: StudyState) -> None:
        """PAUSED sets the `paused` flag and leaves the lifecycle state; the others clear it."""
        change: dict[str, object] = {"paused": state is StudyState.PAUSED}
        if state is not StudyState.PAUSED:
            change["state"] = state.value
        updated = self._db.scalar(update(STUDIES).where(STUDIES.c.name == name).values(change).returning(STUDIES.c.id))
        if updated is None:
            raise NotFoundError(f"study {name!r} not found")

    # --- decisions ---
    def expire_leases(self, study: str, heartbeat_before: datetime, now: datetime) -> list[int]:
        """The scan reads only the study's ACTIVE trials (index on study_id, status)."""
        cutoff, end = utc(heartbeat_before), utc(now)
        stale = self._db.execute(q.stale_trials, {"p_study": self._study_id(study), "p_cutoff": cutoff}).all()
        for row in stale:
            self._end_stale(row.id, row.initiator_parent_trial_id, end)
        return [row.id for row in stale]

    def population_view(self, study: str, config: StudyConfig) -> PopulationView:
        """See PopulationView; one indexed query whatever the history and the population. The
        opponents are a lazy sequence: the tournament reads the one it draws (one more query), so
        a suggestion's cost does not grow with population × k. Use the view inside its
        transaction. The initiator and the opponents carry only their final measurement."""
        study_id = self._study_id(study)
        algorithm = config.algorithm
        k = selection.opponent_generations(algorithm)
        limit = algorithm.max_generations - 1 if algorithm.max_generations > 0 else q.NO_GENERATION_LIMIT
        rows = self._db.execute(q.view_head, {"p_study": study_id, "p_generation_limit": limit, "p_k": k}).all()
        head = rows[0]
        if head.initiator_id is None:
            return PopulationView(live_in_generation_zero=head.live_zero, trials_counted=head.counted)
        initiator = trial_from_joined_rows(rows, study)
        generation = head.initiator_generation
        opponents: Sequence[Trial]
        if selection.reads_all_opponents(algorithm):
            window_trials = self.completed_trials(study, max(generation - k + 1, 0), generation, finals_only=True)
            opponents = [t for t in window_trials if t.id != initiator.id]
        else:
            window = {"p_study": study_id, "p_k": k, "p_initiator": head.initiator_id, "p_generation": generation}
            opponents = _LazyOpponents(
                head.opponent_count, lambda offset: self._read_opponent({**window, "p_offset": offset}, study)
            )
        return PopulationView(
            live_in_generation_zero=head.live_zero,
            trials_counted=head.counted,
            initiator=initiator,
            initiator_generation_size=head.generation_size,
            opponents=opponents,
            history=self._pb2_history(study, config, generation),
        )

    def _pb2_history(self, study: str, config: StudyConfig, generation: int) -> list[Trial]:
        """PB2's observations: the completed trials (final measurements only) of the fewest recent
        generations that can hold `pb2_max_points`, newest first, capped at that many."""
        explore = config.algorithm.explore
        if explore.strategy is not ExploreStrategy.PB2:
            return []
        span = -(-explore.pb2_max_points // config.algorithm.population_size) + 1
        recent = self.completed_trials(study, max(generation - span + 1, 0), generation, finals_only=True)
        recent.sort(key=lambda t: (-t.generation, -t.number))
        return recent[: explore.pb2_max_points]

    def _read_opponent(self, window: dict[str, object], study: str) -> Trial:
        """The opponent `sql_queries.opponent_at` selects; the study lock keeps the window as counted."""
        rows = self._db.execute(q.opponent_at, window).all()
        if not rows:
            raise NotFoundError(f"opponent {window['p_offset']} of trial {window['p_initiator']} not found")
        return trial_from_joined_rows(rows, study)

    def create_trial(self, study: str, proposal: TrialProposal, worker_id: str, now: datetime) -> Trial:
        """Also raises NotFoundError for an unknown initiator or parent, and ValueError for an
        initiator that is not a COMPLETED trial of the study free to initiate, or for a
        hyperparameter value that is not a finite float, an int or a str."""
        created = utc(now)
        params = [param_values(name, value) for name, value in proposal.hparams.items()]
        initiator, parent = proposal.initiator_id, proposal.parent_trial_id
        if self._db.dialect.name == "postgresql":
            trial_id, number = self._create_trial_in_one_trip(study, proposal, params, worker_id, created)
            return _new_trial(trial_id, study, number, proposal, worker_id, created)
        head = self._db.execute(
            q.next_number, {"p_name": study, "p_initiator": initiator, "p_parent": parent}
        ).one_or_none()
        if head is None:
            raise NotFoundError(f"study {study!r} not found")
        study_id, number = head.id, head.trial_count
        if parent is not None and not head.parent_found:
            raise NotFoundError(f"parent trial {parent} not found")
        if initiator is not None and head.free_initiator_study != study_id:
            self._refuse_initiator(study_id, initiator)
        values = {
            "study_id": study_id,
            "number": number,
            "generation": proposal.generation,
            "status": ACTIVE,
            "worker_id": worker_id,
            "warm_start_checkpoint_path": proposal.warm_start_checkpoint_path,
            "parent_trial_id": proposal.parent_trial_id,
            "initiator_parent_trial_id": proposal.initiator_id,
            "initiated_trial_id": None,
            "stop_requested": False,
            "status_message": "",
            "create_time": created,
            "heartbeat_time": created,
            "steps": proposal.steps,
            "lineage_json": lineage_to_json(proposal.lineage),
        }
        trial_id = self._db.scalar(q.insert_trial, values)
        if params:
            self._db.execute(insert(PARAMS), [{"trial_id": trial_id, **p} for p in params])
        if initiator is not None:
            claimed = self._db.execute(q.claim_initiator, {"p_initiator": initiator, "p_child": trial_id})
            if claimed.rowcount != 1:  # the study lock makes this impossible; never double-initiate
                raise ValueError(f"trial {initiator} cannot initiate: it initiated a trial meanwhile")
        return _new_trial(trial_id, study, number, proposal, worker_id, created)

    def _create_trial_in_one_trip(
        self, study: str, proposal: TrialProposal, params: list[dict[str, Any]], worker_id: str, created: datetime
    ) -> tuple[int, int]:
        """PostgreSQL's `create_trial`: one statement; on a refused reference, finds out which."""
        initiator, parent = proposal.initiator_id, proposal.parent_trial_id
        row = self._db.execute(
            q.create_trial_postgresql,
            {
                "p_name": study, "p_parent": parent, "p_initiator": initiator, "p_generation": proposal.generation,
                "p_worker": worker_id, "p_checkpoint": proposal.warm_start_checkpoint_path, "p_now": created,
                "p_steps": proposal.steps, "p_lineage": lineage_to_json(proposal.lineage),
                **{f"p_{key}": [p[column] for p in params] for key, column in _PARAM_ARRAYS},
            },
        ).one_or_none()  # fmt: skip
        if row is None:
            raise NotFoundError(f"study {study!r} not found")
        if row.id is None:
            if parent is not None and self._db.scalar(select(TRIALS.c.id).where(TRIALS.c.id == parent)) is None:
                raise NotFoundError(f"parent trial {parent} not found")
            self._refuse_initiator(row.study_id, initiator or 0)
        if initiator is not None and row.claimed != 1:  # the study lock makes this impossible
            raise ValueError(f"trial {initiator} cannot initiate: it initiated a trial meanwhile")
        return row.id, row.number

    def active_trials(self, study: str, worker_id: str | None = None) -> list[Trial]:
        if worker_id is not None:
            rows = self._db.execute(q.active_of_worker, {"p_study": self._study_id(study), "p_worker": worker_id}).all()
        else:
            query = select(TRIALS).where(TRIALS.c.study_id == self._study_id(study), TRIALS.c.status == ACTIVE)
            rows = self._db.execute(query.order_by(TRIALS.c.number)).all()
        return load_trials(self._db, rows, study, full=True)

    def has_active_trials(self, study: str) -> bool:
        return self._db.scalar(q.any_active, {"p_study": self._study_id(study)}) is not None

    def completed_trials(
        self, study: str, min_generation: int, max_generation: int, *, finals_only: bool = False
    ) -> list[Trial]:
        rows = self._db.execute(
            select(TRIALS)
            .where(
                TRIALS.c.study_id == self._study_id(study),
                TRIALS.c.generation.between(min_generation, max_generation),
                TRIALS.c.status == COMPLETED,
            )
            .order_by(TRIALS.c.generation, TRIALS.c.number)
        ).all()
        return load_trials(self._db, rows, study, full=not finals_only)

    # --- trials ---
    def lock_trial(self, trial_id: int) -> TrialState:
        row = self._db.execute(q.trial_state, {"p_trial": trial_id}).one_or_none()
        if row is None:
            raise NotFoundError(f"trial {trial_id} not found")
        return _state(row)

    def renew_lease(
        self, trial_id: int, worker_id: str, valid_after: datetime, now: datetime, *, new_step: int | None = None
    ) -> TrialState | None:
        change = {"p_trial": trial_id, "p_worker": worker_id, "p_valid_after": utc(valid_after), "p_now": utc(now)}
        if new_step is None:
            row = self._db.execute(q.renew_held_lease, change).one_or_none()
        else:
            row = self._db.execute(q.renew_held_lease_for_new_step, {**change, "p_step": new_step}).one_or_none()
        return None if row is None else _state(row)

    def get_trial(self, trial_id: int, *, lock: bool = False, with_measurements: bool = True) -> Trial:
        query = (
            select(TRIALS, STUDIES.c.name.label("study_name"))
            .join(STUDIES, STUDIES.c.id == TRIALS.c.study_id)
            .where(TRIALS.c.id == trial_id)
        )
        row = self._db.execute(query.with_for_update(key_share=True, of=TRIALS) if lock else query).one_or_none()
        if row is None:
            raise NotFoundError(f"trial {trial_id} not found")
        (trial,) = load_trials(self._db, [row], row.study_name, full=with_measurements)
        return trial

    def add_measurement(
        self, trial_id: int, measurement: Measurement, now: datetime, *, max_measurements: int = NO_LIMIT
    ) -> bool:
        if self._insert_measurement(trial_id, measurement, utc(now), max_measurements) is not None:
            return True
        if self._db.scalar(q.step_recorded, {"p_trial": trial_id, "p_step": measurement.step}) is not None:
            return False
        raise TrialFullError(
            f"trial {trial_id} already holds {max_measurements} measurements, the most a trial may hold; "
            "complete it (a trial is one session between exploit steps)"
        )

    def heartbeat(self, trial_id: int, now: datetime) -> None:
        if self._db.scalar(q.renew_lease, {"p_trial": trial_id, "p_now": utc(now)}) is None:
            raise NotFoundError(f"trial {trial_id} not found")

    def request_stop(self, trial_ids: Sequence[int]) -> None:
        """Ids that do not exist are ignored."""
        for chunk in chunks(sorted(set(trial_ids))):
            self._db.execute(update(TRIALS).where(TRIALS.c.id.in_(chunk)).values(stop_requested=True))

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
        ended = utc(now)
        change = {"p_trial": trial_id, "p_status": status.value, "p_message": message, "p_end": ended}
        if final_measurement is not None:
            final_id = self._db.scalar(
                select(MEASUREMENTS.c.id).where(
                    MEASUREMENTS.c.trial_id == trial_id, MEASUREMENTS.c.step == final_measurement.step
                )
            )
            if final_id is None:
                final_id = self._insert_measurement(trial_id, final_measurement, ended)
            row = self._db.execute(q.end_trial, {**change, "p_final": final_id}).one_or_none()
        elif status is TrialStatus.COMPLETED:
            row = self._db.execute(q.complete_with_latest, change).one_or_none()
        else:
            row = self._db.execute(q.end_trial, {**change, "p_final": None}).one_or_none()
        if row is None:
            self._require_trial(trial_id)
            raise TrialStateError(f"trial {trial_id} is not active")
        if status is TrialStatus.COMPLETED and row.final_measurement_id is None:
            raise TrialStateError(f"trial {trial_id} has no measurement to complete with")
        self._hand_back(trial_id, row.study_id, row.initiator_parent_trial_id, status)
        (trial,) = load_trials(self._db, [row], row.study_name, full=True)
        return trial

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
        query = select(TRIALS).where(TRIALS.c.study_id == self._study_id(study), TRIALS.c.number > after_number)
        if statuses:
            query = query.where(TRIALS.c.status.in_([s.value for s in statuses]))
        if generation is not None:
            query = query.where(TRIALS.c.generation == generation)
        rows = self._db.execute(query.order_by(TRIALS.c.number).limit(limit)).all()
        return load_trials(self._db, rows, study, full=with_measurements)

    # --- checkpoint collection ---
    def collection_view(self, study: str) -> CollectionView:
        """Reads the study's history once (a trial whose checkpoints are all deleted is skipped by
        an index probe); a collection runs now and then, not on the hot path."""
        params = {"p_study": self._study_id(study)}
        rows = self._db.execute(q.collection_candidates, params).all()
        live_zero = self._db.scalar(q.live_in_generation_zero, params) or 0
        return CollectionView(load_trials(self._db, rows, study, full=True), int(live_zero))

    def mark_checkpoints_collecting(self, measurements: Sequence[tuple[int, int]]) -> int:
        pairs, changed = sorted(set(measurements)), 0
        for start in range(0, len(pairs), CHUNK):
            result = self._db.execute(q.mark_collecting, {"p_measurements": pairs[start : start + CHUNK]})
            changed += int(result.rowcount)
        return changed

    def mark_checkpoints_deleted(self, study: str, paths: Sequence[str]) -> int:
        study_id, changed = self._study_id(study), 0
        unique = sorted(set(paths))
        for start in range(0, len(unique), CHUNK):
            result = self._db.execute(q.mark_deleted, {"p_study": study_id, "p_paths": unique[start : start + CHUNK]})
            changed += int(result.rowcount)
        return changed

    # --- helpers ---
    # --- access tokens and service-wide reads (`sql_access`) ---
    def add_token(
        self, name: str, token_hash: str, role: Role, studies: Sequence[str] | None, now: datetime
    ) -> TokenRecord:
        return sql_access.add_token(self._db, name, token_hash, role, studies, now)

    def find_token(self, token_hash: str) -> TokenRecord | None:
        return sql_access.find_token(self._db, token_hash)

    def revoke_token(self, token_id: int, now: datetime) -> TokenRecord:
        return sql_access.revoke_token(self._db, token_id, now)

    def list_tokens(self) -> list[TokenRecord]:
        return sql_access.list_tokens(self._db)

    def study_of_trial(self, trial_id: int) -> str | None:
        return sql_access.study_of_trial(self._db, trial_id)

    def trial_counts(self) -> list[tuple[str, TrialStatus, int]]:
        return sql_access.trial_counts(self._db)

    def _study_id(self, name: str) -> int:
        study_id = self._study_ids.get(name)
        if study_id is None:
            study_id = self._db.scalar(select(STUDIES.c.id).where(STUDIES.c.name == name))
            if study_id is None:
                raise NotFoundError(f"study {name!r} not found")
            self._study_ids[name] = study_id
        return study_id

    def _require_trial(self, trial_id: int) -> None:
        if self._db.scalar(select(TRIALS.c.id).where(TRIALS.c.id == trial_id)) is None:
            raise NotFoundError(f"trial {trial_id} not found")

    def _refuse_initiator(self, study_id: int, initiator_id: int) -> None:
        """Raises the error that says why `initiator_id` may not initiate."""
        found = self._db.execute(
            select(TRIALS.c.study_id, TRIALS.c.status, TRIALS.c.initiated_trial_id).where(TRIALS.c.id == initiator_id)
        ).one_or_none()
        if found is None:
            raise NotFoundError(f"initiator trial {initiator_id} not found")
        raise ValueError(
            f"trial {initiator_id} cannot initiate: study id {found.study_id} (want {study_id}), "
            f"status {found.status}, initiated trial {found.initiated_trial_id}"
        )

    def _end_stale(self, trial_id: int, initiator_id: int | None, now: datetime) -> None:
        row = self._db.execute(
            q.end_trial,
            {"p_trial": trial_id, "p_status": TrialStatus.STOPPED.value, "p_message": LEASE_EXPIRED,
             "p_end": now, "p_final": None},
        ).one()  # fmt: skip
        self._hand_back(trial_id, row.study_id, initiator_id, TrialStatus.STOPPED)

    def _hand_back(self, trial_id: int, study_id: int, initiator_id: int | None, status: TrialStatus) -> None:
        """After a trial ended: STOPPED and FAILED hand the reproduction back (the initiator
        initiates again); STOPPED also counts in the study's `stopped_count`."""
        if status is TrialStatus.COMPLETED:
            return
        if initiator_id is not None:
            self._db.execute(
                update(TRIALS)
                .where(TRIALS.c.id == initiator_id, TRIALS.c.initiated_trial_id == trial_id)
                .values(initiated_trial_id=None)
            )
        if status is TrialStatus.STOPPED:
            self._db.execute(
                update(STUDIES).where(STUDIES.c.id == study_id).values(stopped_count=STUDIES.c.stopped_count + 1)
            )

    def _insert_measurement(
        self, trial_id: int, measurement: Measurement, now: datetime, limit: int = NO_LIMIT
    ) -> int | None:
        """Inserts a measurement unless its step exists or the trial holds `limit` measurements
        (atomically); returns its id or None. Its time is `now`, the service's, never the
        caller's. Raises NotFoundError for an unknown trial (the only foreign key the insert can
        break). One round trip on PostgreSQL, two on SQLite."""
        values = {
            "p_trial": trial_id, "p_step": measurement.step, "p_path": measurement.checkpoint_path,
            "p_elapsed": measurement.elapsed_seconds, "p_created": now, "p_limit": limit,
        }  # fmt: skip
        metrics = [(name, None if math.isnan(v) else float(v)) for name, v in measurement.metrics.items()]
        try:
            if self._db.dialect.name == "postgresql":
                names, numbers = [m[0] for m in metrics], [m[1] for m in metrics]
                return self._db.scalar(
                    q.insert_measurement_with_metrics_postgresql, {**values, "p_names": names, "p_values": numbers}
                )
            measurement_id: int | None = self._db.scalar(q.insert_measurement_sqlite, values)
        except IntegrityError as e:
            raise NotFoundError(f"trial {trial_id} not found") from e
        if measurement_id is not None and metrics:
            rows = [{"measurement_id": measurement_id, "name": name, "value": value} for name, value in metrics]
            self._db.execute(insert(METRICS), rows)
        return measurement_id


_PARAM_ARRAYS = (
    ("names", "name"),
    ("kinds", "kind"),
    ("floats", "float_value"),
    ("ints", "int_value"),
    ("strings", "string_value"),
)


def _new_trial(
    trial_id: int, study: str, number: int, proposal: TrialProposal, worker_id: str, created: datetime
) -> Trial:
    return Trial(
        id=trial_id, study=study, number=number, generation=proposal.generation,
        status=TrialStatus.ACTIVE, hparams=dict(proposal.hparams),
        warm_start_checkpoint_path=proposal.warm_start_checkpoint_path,
        parent_trial_id=proposal.parent_trial_id, initiator_parent_trial_id=proposal.initiator_id,
        worker_id=worker_id, create_time=created, heartbeat_time=created, steps=proposal.steps,
        lineage=proposal.lineage,
    )  # fmt: skip


class _LazyOpponents(Sequence[Trial]):
    """`count` opponents, each read when first indexed."""

    def __init__(self, count: int, read: Callable[[int], Trial]) -> None:
        self._count = count
        self._read = read
        self._cache: dict[int, Trial] = {}

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Trial: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Trial]: ...
    def __getitem__(self, index: int | slice) -> Trial | Sequence[Trial]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(index)
        if index not in self._cache:
            self._cache[index] = self._read(index)
        return self._cache[index]


def _state(row: AnyRow) -> TrialState:
    return TrialState(
        id=row.id, study=row.name, generation=row.generation, status=TrialStatus(row.status),
        worker_id=row.worker_id, stop_requested=row.stop_requested, status_message=row.status_message,
        create_time=row.create_time, heartbeat_time=row.heartbeat_time, config=config_from_json(row.config_json),
    )  # fmt: skip
