"""The statements of the hot paths (suggest, report, complete), built once with bound parameters.

A statement object built once keeps its compiled form and cache key, so an execution skips
building the expression tree; each statement here is one round trip over an index. Parameter
names differ from column names: UPDATE reserves those for its SET clause.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    ScalarSelect,
    String,
    Table,
    Update,
    and_,
    bindparam,
    cast,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from pbt_service.core.types import CheckpointState, TrialStatus
from pbt_service.store.sql_rows import MEASUREMENTS, METRICS, PARAMS, STUDIES, TRIALS

ACTIVE = TrialStatus.ACTIVE.value
COMPLETED = TrialStatus.COMPLETED.value
LIVE = (ACTIVE, COMPLETED)
NO_GENERATION_LIMIT = 2**31 - 1

study_by_name = select(STUDIES).where(STUDIES.c.name == bindparam("p_name"))
lock_study = study_by_name.with_for_update(key_share=True)

_active_of_study = (TRIALS.c.study_id == STUDIES.c.id, TRIALS.c.status == ACTIVE)
lock_study_for_suggestion = (
    select(
        STUDIES,
        exists()
        .where(
            *_active_of_study,
            func.coalesce(TRIALS.c.heartbeat_time, TRIALS.c.create_time)
            < bindparam("p_cutoff", type_=TRIALS.c.create_time.type),
        )
        .label("has_lapsed"),
        exists().where(*_active_of_study, TRIALS.c.worker_id == bindparam("p_worker")).label("holds_trials"),
    )
    .where(STUDIES.c.name == bindparam("p_name"))
    .with_for_update(key_share=True, of=STUDIES)
)
"""The study, locked, and whether it has lapsed trials and whether the worker holds any: the
common suggestion skips both scans in one round trip."""

stale_trials = (
    select(TRIALS.c.id, TRIALS.c.initiator_parent_trial_id)
    .where(
        TRIALS.c.study_id == bindparam("p_study"),
        TRIALS.c.status == ACTIVE,
        func.coalesce(TRIALS.c.heartbeat_time, TRIALS.c.create_time)
        < bindparam("p_cutoff", type_=TRIALS.c.create_time.type),
    )
    .order_by(TRIALS.c.number)
    .with_for_update(key_share=True)
)

active_of_worker = (
    select(TRIALS)
    .where(
        TRIALS.c.study_id == bindparam("p_study"),
        TRIALS.c.status == ACTIVE,
        TRIALS.c.worker_id == bindparam("p_worker"),
    )
    .order_by(TRIALS.c.number)
)

any_active = (
    select(TRIALS.c.id).where(TRIALS.c.study_id == bindparam("p_study"), TRIALS.c.status == ACTIVE).limit(1)
)

_candidate = TRIALS.alias("candidate")
_initiator = TRIALS.alias("initiator")
_member = TRIALS.alias("member")
_peer = TRIALS.alias("peer")


def _opponents_of(initiator_id: ColumnElement[int], generation: ColumnElement[int]) -> tuple[ColumnElement[bool], ...]:
    """COMPLETED trials of the initiator's past `p_k` generations, the initiator excluded."""
    return (
        _peer.c.study_id == bindparam("p_study"),
        _peer.c.status == COMPLETED,
        _peer.c.generation.between(generation - bindparam("p_k") + 1, generation),
        _peer.c.id != initiator_id,
    )


def _live_in(generation: int | ColumnElement[int]) -> ScalarSelect[int]:
    return (
        select(func.count())
        .where(
            _member.c.study_id == bindparam("p_study"),
            _member.c.generation == generation,
            _member.c.status.in_(LIVE),
        )
        .scalar_subquery()
    )


def _final_and_params(trial: Any, final: Any, metric: Any, param: Any) -> tuple[Any, ...]:
    """The columns of a trial with its final measurement (`m_*`) and params, the shape
    `sql_rows.trial_from_joined_rows` reads."""
    return (
        *trial.c,
        final.c.step.label("m_step"),
        final.c.checkpoint_path.label("m_checkpoint_path"),
        final.c.elapsed_seconds.label("m_elapsed_seconds"),
        final.c.create_time.label("m_create_time"),
        final.c.checkpoint_state.label("m_checkpoint_state"),
        metric.c.name.label("m_name"),
        metric.c.value.label("m_value"),
        param.c.trial_id,
        param.c.name,
        param.c.kind,
        param.c.int_value,
        param.c.float_value,
        param.c.string_value,
    )


_final = MEASUREMENTS.alias("final")
_final_metric = METRICS.alias("final_metric")
_initiator_param = PARAMS.alias("initiator_param")

view_head = (
    select(
        (STUDIES.c.trial_count - STUDIES.c.stopped_count).label("counted"),
        _live_in(0).label("live_zero"),
        _initiator.c.id.label("initiator_id"),
        _initiator.c.generation.label("initiator_generation"),
        _live_in(_initiator.c.generation).label("generation_size"),
        select(func.count())
        .where(*_opponents_of(_initiator.c.id, _initiator.c.generation))
        .scalar_subquery()
        .label("opponent_count"),
        *_final_and_params(_initiator, _final, _final_metric, _initiator_param),
    )
    .select_from(
        STUDIES.outerjoin(
            _initiator,
            _initiator.c.id
            == select(_candidate.c.id)
            .where(
                _candidate.c.study_id == bindparam("p_study"),
                _candidate.c.status == COMPLETED,
                _candidate.c.initiated_trial_id.is_(None),
                _candidate.c.generation < bindparam("p_generation_limit"),
            )
            # initiated_trial_id (NULL here) leads so the planner reads ix_trials_initiator_lookup
            # in order and stops at the first entry instead of sorting.
            .order_by(_candidate.c.initiated_trial_id, _candidate.c.generation, _candidate.c.number)
            .limit(1)
            .scalar_subquery(),
        )
        .outerjoin(_final, _final.c.id == _initiator.c.final_measurement_id)
        .outerjoin(_final_metric, _final_metric.c.measurement_id == _final.c.id)
        .outerjoin(_initiator_param, _initiator_param.c.trial_id == _initiator.c.id)
    )
    .where(STUDIES.c.id == bindparam("p_study"))
)
"""The budget count, the generation-0 size, the initiator, its generation's size, its number of
opponents, and the initiator itself with its final measurement and params (shaped as
`opponent_at`): a row per (metric, param) pair of the initiator, one row when there is none."""

_with_final_and_params = select(*_final_and_params(TRIALS, MEASUREMENTS, METRICS, PARAMS)).select_from(
    TRIALS.outerjoin(MEASUREMENTS, MEASUREMENTS.c.id == TRIALS.c.final_measurement_id)
    .outerjoin(METRICS, METRICS.c.measurement_id == MEASUREMENTS.c.id)
    .outerjoin(PARAMS, PARAMS.c.trial_id == TRIALS.c.id)
)

opponent_at = _with_final_and_params.where(
    TRIALS.c.id
    == select(_peer.c.id)
    .where(*_opponents_of(bindparam("p_initiator"), bindparam("p_generation")))
    .order_by(_peer.c.generation, _peer.c.number)
    .offset(bindparam("p_offset"))
    .limit(1)
    .scalar_subquery()
)
"""The opponent at `p_offset` in (generation, number) order with its final measurement and params: a
row per (metric, param) pair."""


_reference = TRIALS.alias("reference")

next_number = (
    update(STUDIES)
    .where(STUDIES.c.name == bindparam("p_name"))
    .values(trial_count=STUDIES.c.trial_count + 1)
    .returning(
        STUDIES.c.id,
        STUDIES.c.trial_count,
        select(_reference.c.study_id)
        .where(
            _reference.c.id == bindparam("p_initiator"),
            _reference.c.status == COMPLETED,
            _reference.c.initiated_trial_id.is_(None),
        )
        .scalar_subquery()
        .label("free_initiator_study"),
        select(func.count())
        .where(_reference.c.id == bindparam("p_parent"))
        .scalar_subquery()
        .label("parent_found"),
    )
)
"""Takes the study's next trial number and checks the proposal's references in the same trip
(SQLite renders RETURNING columns unqualified, hence the alias and no correlation)."""

claim_initiator = (
    update(TRIALS)
    .where(TRIALS.c.id == bindparam("p_initiator"), TRIALS.c.initiated_trial_id.is_(None))
    .values(initiated_trial_id=bindparam("p_child"))
)

_study_name = select(STUDIES.c.name).where(STUDIES.c.id == TRIALS.c.study_id).scalar_subquery()
_study_config = select(STUDIES.c.config_json).where(STUDIES.c.id == TRIALS.c.study_id).scalar_subquery()
# SQLite renders RETURNING columns unqualified: inside these subqueries `id` is studies.id and
# `study_id` (a column studies lacks) the updated trial's, which is what they mean.
_STATE = (
    TRIALS.c.id,
    TRIALS.c.generation,
    TRIALS.c.status,
    TRIALS.c.worker_id,
    TRIALS.c.stop_requested,
    TRIALS.c.status_message,
    TRIALS.c.create_time,
    TRIALS.c.heartbeat_time,
)

trial_state = (
    select(*_STATE, STUDIES.c.name, STUDIES.c.config_json)
    .join(STUDIES, STUDIES.c.id == TRIALS.c.study_id)
    .where(TRIALS.c.id == bindparam("p_trial"))
    .with_for_update(key_share=True, of=TRIALS)
)

_renewable = (
    TRIALS.c.id == bindparam("p_trial"),
    TRIALS.c.worker_id == bindparam("p_worker"),
    TRIALS.c.status == ACTIVE,
    func.coalesce(TRIALS.c.heartbeat_time, TRIALS.c.create_time)
    >= bindparam("p_valid_after", type_=TRIALS.c.create_time.type),
)
renew_held_lease = (
    update(TRIALS)
    .where(*_renewable)
    .values(heartbeat_time=bindparam("p_now"))
    .returning(*_STATE, _study_name.label("name"), _study_config.label("config_json"))
)
"""Locks a trial and renews its lease if the caller holds it and the lease still runs; no row
otherwise."""

renew_held_lease_for_new_step = renew_held_lease.where(
    ~select(MEASUREMENTS.c.id)
    .where(MEASUREMENTS.c.trial_id == TRIALS.c.id, MEASUREMENTS.c.step == bindparam("p_step"))
    .exists()
)
"""The same, and only while the trial has no measurement at that step: a repeated report renews
nothing (it is then told apart by `trial_state`)."""

renew_lease = (
    update(TRIALS)
    .where(TRIALS.c.id == bindparam("p_trial"))
    .values(heartbeat_time=bindparam("p_now"))
    .returning(TRIALS.c.id)
)

insert_trial = insert(TRIALS).returning(TRIALS.c.id)


def _end_active(final: object) -> Update:
    return (
        update(TRIALS)
        .where(TRIALS.c.id == bindparam("p_trial"), TRIALS.c.status == ACTIVE)
        .values(
            status=bindparam("p_status"),
            status_message=bindparam("p_message"),
            end_time=bindparam("p_end", type_=TRIALS.c.end_time.type),
            final_measurement_id=final,
        )
        .returning(TRIALS, _study_name.label("study_name"))
    )


end_trial = _end_active(bindparam("p_final"))
"""Ends an ACTIVE trial (no row when it is not), with a given final measurement id or none."""

complete_with_latest = _end_active(
    select(MEASUREMENTS.c.id)
    .where(MEASUREMENTS.c.trial_id == bindparam("p_trial"))
    .order_by(MEASUREMENTS.c.step.desc())
    .limit(1)
    .scalar_subquery()
)
"""Ends an ACTIVE trial with its latest measurement as the final one."""


_MEASUREMENT_VALUES = (
    ("trial_id", "p_trial"), ("step", "p_step"), ("checkpoint_path", "p_path"),
    ("elapsed_seconds", "p_elapsed"), ("create_time", "p_created"),
)  # fmt: skip
_measurements_held = (
    select(func.count()).where(MEASUREMENTS.c.trial_id == bindparam("p_trial")).scalar_subquery()
)


def _insert_measurement(dialect_insert: Callable[[Table], Any], *, cast_values: bool) -> Any:
    """INSERT ... SELECT of one measurement unless its step exists or the trial already holds
    `p_limit` measurements (one statement, so the limit holds under concurrent reports too).
    PostgreSQL types the selected parameters by CAST; SQLite, which would turn a CAST of a
    timestamp to DATETIME into a number, takes them as they are."""
    values = [
        cast(bindparam(param, type_=MEASUREMENTS.c[column].type), MEASUREMENTS.c[column].type)
        if cast_values
        else bindparam(param, type_=MEASUREMENTS.c[column].type)
        for column, param in _MEASUREMENT_VALUES
    ]
    return (
        dialect_insert(MEASUREMENTS)
        .from_select(
            [column for column, _ in _MEASUREMENT_VALUES],
            select(*values).where(_measurements_held < bindparam("p_limit")),
        )
        .on_conflict_do_nothing(index_elements=["trial_id", "step"])
        .returning(MEASUREMENTS.c.id)
    )


insert_measurement_sqlite = _insert_measurement(sqlite.insert, cast_values=False)
"""Inserts a measurement unless its step exists or the trial is full; returns its id (no row
otherwise)."""

_new_measurement = _insert_measurement(postgresql.insert, cast_values=True).cte("new_measurement")
insert_measurement_with_metrics_postgresql = select(_new_measurement.c.id).add_cte(
    insert(METRICS)
    .from_select(
        ["measurement_id", "name", "value"],
        select(
            _new_measurement.c.id,
            func.unnest(bindparam("p_names", type_=postgresql.ARRAY(String))),
            func.unnest(bindparam("p_values", type_=postgresql.ARRAY(Float))),
        ),
    )
    .cte("new_metrics")
)
"""The same with its metrics (parallel name and value arrays, NULL for NaN) in one round trip;
the metrics are written only when the measurement is new."""

step_recorded = select(MEASUREMENTS.c.id).where(
    MEASUREMENTS.c.trial_id == bindparam("p_trial"), MEASUREMENTS.c.step == bindparam("p_step")
)

create_trial_postgresql = text(
    """
    WITH next AS (
      UPDATE studies SET trial_count = trial_count + 1 WHERE name = :p_name RETURNING id, trial_count
    ), checked AS (
      SELECT next.id AS study_id, next.trial_count AS number FROM next
      WHERE (CAST(:p_parent AS integer) IS NULL
             OR EXISTS (SELECT 1 FROM trials p WHERE p.id = CAST(:p_parent AS integer)))
        AND (CAST(:p_initiator AS integer) IS NULL
             OR EXISTS (SELECT 1 FROM trials i WHERE i.id = CAST(:p_initiator AS integer)
                        AND i.study_id = next.id AND i.status = 'completed' AND i.initiated_trial_id IS NULL))
    ), new_trial AS (
      INSERT INTO trials (study_id, number, generation, status, worker_id, warm_start_checkpoint_path,
                          parent_trial_id, initiator_parent_trial_id, initiated_trial_id, stop_requested,
                          status_message, create_time, heartbeat_time, steps, lineage_json)
      SELECT study_id, number, :p_generation, 'active', :p_worker, :p_checkpoint, CAST(:p_parent AS integer),
             CAST(:p_initiator AS integer), NULL, false, '', :p_now, :p_now, :p_steps, :p_lineage
      FROM checked
      RETURNING id, number
    ), new_params AS (
      INSERT INTO trial_params (trial_id, name, kind, float_value, int_value, string_value)
      SELECT new_trial.id, u.name, u.kind, u.float_value, u.int_value, u.string_value
      FROM new_trial, unnest(CAST(:p_names AS text[]), CAST(:p_kinds AS text[]), CAST(:p_floats AS float8[]),
                             CAST(:p_ints AS bigint[]), CAST(:p_strings AS text[]))
                      AS u(name, kind, float_value, int_value, string_value)
    ), claimed AS (
      UPDATE trials SET initiated_trial_id = (SELECT id FROM new_trial)
      WHERE id = CAST(:p_initiator AS integer) AND initiated_trial_id IS NULL AND EXISTS (SELECT 1 FROM new_trial)
      RETURNING id
    )
    SELECT next.id AS study_id, new_trial.id, new_trial.number, (SELECT count(*) FROM claimed) AS claimed
    FROM next LEFT JOIN new_trial ON true
    """
)
"""`create_trial` in one round trip on PostgreSQL: takes the next number, checks the parent and
the initiator (no trial row when either fails, so the caller can say which), inserts the trial and
its params and claims the initiator. Data-modifying CTEs are PostgreSQL's; SQLite takes the
statements one by one."""


# --- checkpoint collection (not a hot path: a collection reads what still has checkpoints) ----

_child = TRIALS.alias("child")
PRESENT, COLLECTING, DELETED = (s.value for s in CheckpointState)

collection_candidates = (
    select(TRIALS)
    .where(
        TRIALS.c.study_id == bindparam("p_study"),
        or_(
            TRIALS.c.status == ACTIVE,
            exists().where(
                MEASUREMENTS.c.trial_id == TRIALS.c.id,
                MEASUREMENTS.c.checkpoint_path != "",
                MEASUREMENTS.c.checkpoint_state != DELETED,
            ),
            and_(
                TRIALS.c.status == COMPLETED,
                or_(
                    TRIALS.c.initiated_trial_id.is_(None),
                    exists().where(_child.c.id == TRIALS.c.initiated_trial_id, _child.c.status == ACTIVE),
                ),
            ),
        ),
    )
    .order_by(TRIALS.c.number)
)
"""What `garbage_collection.decide` needs: trials with a checkpoint not deleted, ACTIVE trials, and
COMPLETED trials that may still initiate."""

live_in_generation_zero = select(_live_in(0))

mark_collecting = (
    update(MEASUREMENTS)
    .where(
        tuple_(MEASUREMENTS.c.trial_id, MEASUREMENTS.c.step).in_(bindparam("p_measurements", expanding=True)),
        MEASUREMENTS.c.checkpoint_state == PRESENT,
    )
    .values(checkpoint_state=COLLECTING)
)
"""Marks PRESENT checkpoints of the given (trial id, step) pairs as COLLECTING."""

mark_deleted = (
    update(MEASUREMENTS)
    .where(
        MEASUREMENTS.c.trial_id.in_(select(TRIALS.c.id).where(TRIALS.c.study_id == bindparam("p_study"))),
        MEASUREMENTS.c.checkpoint_path.in_(bindparam("p_paths", expanding=True)),
        MEASUREMENTS.c.checkpoint_state == COLLECTING,
    )
    .values(checkpoint_state=DELETED)
)
