"""Lease rules: who may report on a trial, and when a silent worker loses it.

A trial's lease runs out `lease_seconds` after its last heartbeat (a measurement counts as one).
From then on it is dead, whichever call notices first: a suggestion stops every lapsed trial of
its study, and a report, heartbeat or completion on a lapsed trial stops it (with the others of
its study) and is refused, so a late worker never revives a trial whose reproduction may already
be handed back. Replicas compare lease times with their own clocks: keep them synchronized (NTP)
to well under the lease.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from pbt_service.core.errors import FailedPreconditionError
from pbt_service.core.types import Trial, TrialStatus
from pbt_service.store.base import LEASE_EXPIRED, Transaction, TrialState

log = logging.getLogger(__name__)


class LeaseLapsed(Exception):
    """Raised inside a transaction on a trial whose lease ran out. The caller rolls that
    transaction back and stops the lapsed trials in one of its own, which takes the study lock
    first (the store's lock order), then refuses the call (`lapsed_error`)."""

    def __init__(self, trial: TrialState) -> None:
        super().__init__(trial.id)
        self.trial = trial


def lease_start(now: datetime, lease_seconds: float) -> datetime:
    """The oldest heartbeat that still holds a lease at `now`."""
    return now - timedelta(seconds=lease_seconds)


def check_held(trial: Trial | TrialState, worker_id: str) -> None:
    """A trial accepts reports only while ACTIVE and only from the worker that holds it."""
    if trial.worker_id != worker_id:
        raise FailedPreconditionError(f"trial {trial.id} is held by worker {trial.worker_id!r}, not {worker_id!r}")
    if trial.status is not TrialStatus.ACTIVE:
        detail = f": {trial.status_message}" if trial.status_message else ""
        raise FailedPreconditionError(f"trial {trial.id} is {trial.status.value}{detail}")


def renew(
    tx: Transaction, trial_id: int, worker: str, now: datetime, lease_seconds: float, *, new_step: int | None = None
) -> TrialState:
    """The caller's trial, locked, its lease renewed: any call of its holder is a heartbeat,
    except a report of a step already recorded, which changes nothing. Raises NotFoundError,
    FailedPreconditionError (not its trial, or not active) and LeaseLapsed."""
    start = lease_start(now, lease_seconds)
    state = tx.renew_lease(trial_id, worker, start, now, new_step=new_step)
    if state is None:
        state = tx.lock_trial(trial_id)
        check_held(state, worker)
        if (state.heartbeat_time or state.create_time) < start:
            raise LeaseLapsed(state)
    return state


def expire(tx: Transaction, study: str, now: datetime, lease_seconds: float, *, lock: bool) -> list[int]:
    """Stops the study's lapsed trials, handing their reproductions back; `lock` takes the study
    lock first (callers that hold it already pass False)."""
    if lock:
        tx.get_study(study, lock=True)
    expired = tx.expire_leases(study, lease_start(now, lease_seconds), now)
    if expired:
        log.info("study %s: leases expired for trials %s", study, expired)
    return expired


def lapsed_error(trial: TrialState, lease_seconds: float) -> FailedPreconditionError:
    """What the caller of a lapsed trial is told."""
    return FailedPreconditionError(
        f"trial {trial.id} is stopped: {LEASE_EXPIRED} (no heartbeat from worker "
        f"{trial.worker_id!r} for more than {lease_seconds:g}s)"
    )
