"""The statements of the hot paths (suggest, report, complete), built once with bound parameters.

A statement object built once keeps its compiled form and cache key, so an execution skips
building the expression tree; each statement here is one round trip over an index. Parameter
names differ from column names: UPDATE reserves those for its SET clause.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, ScalarSelect, Update, bindparam, func, insert, select, update

from pbt_service.core.types import TrialStatus
from pbt_service.store.sql_rows import MEASUREMENTS, METRICS, STUDIES, TRIALS

ACTIVE = TrialStatus.ACTIVE.value
COMPLETED = TrialStatus.COMPLETED.value
LIVE = (ACTIVE, COMPLETED)
NO_GENERATION_LIMIT = 2**31 - 1

study_by_name = select(STUDIES).where(STUDIES.c.name == bindparam("p_name"))
lock_study = study_by_name.with_for_update(key_share=True)

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


view_head = (
    select(
        (STUDIES.c.trial_count - STUDIES.c.stopped_count).label("counted"),
        _live_in(0).label("live_zero"),
        _initiator.c.id.label("initiator_id"),
        _initiator.c.generation.label("initiator_generation"),
        _live_in(_initiator.c.generation).label("generation_size"),
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
    )
    .where(STUDIES.c.id == bindparam("p_study"))
)
"""The budget count, the generation-0 size, the initiator and its generation's size: one row."""

completed_with_finals = (
    select(
        TRIALS,
        MEASUREMENTS.c.step.label("m_step"),
        MEASUREMENTS.c.checkpoint_path.label("m_checkpoint_path"),
        MEASUREMENTS.c.elapsed_seconds.label("m_elapsed_seconds"),
        MEASUREMENTS.c.create_time.label("m_create_time"),
        METRICS.c.name.label("m_name"),
        METRICS.c.value.label("m_value"),
    )
    .select_from(
        TRIALS.outerjoin(MEASUREMENTS, MEASUREMENTS.c.id == TRIALS.c.final_measurement_id).outerjoin(
            METRICS, METRICS.c.measurement_id == MEASUREMENTS.c.id
        )
    )
    .where(
        TRIALS.c.study_id == bindparam("p_study"),
        TRIALS.c.generation.between(bindparam("p_low"), bindparam("p_high")),
        TRIALS.c.status == COMPLETED,
    )
    .order_by(TRIALS.c.generation, TRIALS.c.number)
)
"""Completed trials of a window of generations with their final measurement, a row per metric."""

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
