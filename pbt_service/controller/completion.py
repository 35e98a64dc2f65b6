"""Use cases that end a trial: its worker completes or fails it, anyone stops it.

A retried completion whose first attempt took effect answers with the ended trial instead of
an error, so a lost reply is harmless.
"""

from __future__ import annotations

import logging
from datetime import datetime

from pbt_service.controller import leases
from pbt_service.controller.validation import objective_metrics, same_metrics
from pbt_service.core.checkpoint_paths import require_under_roots
from pbt_service.core.errors import FailedPreconditionError
from pbt_service.core.types import Measurement, Trial, TrialStatus
from pbt_service.store.base import Transaction
from pbt_service.store.errors import TrialStateError

log = logging.getLogger(__name__)
DEFAULT_STOP_REASON = "stopped by request"


def complete(
    tx: Transaction,
    trial_id: int,
    worker: str,
    final: Measurement | None,
    failure_reason: str,
    now: datetime,
    lease_seconds: float,
) -> Trial:
    """COMPLETED with `final` (default: the latest measurement), or FAILED when a reason is
    given. Raises NotFoundError, InvalidArgumentError, FailedPreconditionError, LeaseLapsed."""
    state = tx.renew_lease(trial_id, worker, leases.lease_start(now, lease_seconds), now)
    if state is None:
        trial = tx.get_trial(trial_id)
        if trial.worker_id == worker and is_repeat(trial, final, failure_reason):
            return trial
        state = leases.renew(tx, trial_id, worker, now, lease_seconds)
    if failure_reason:
        log.info("trial %s failed: %s", trial_id, failure_reason)
        return tx.finish_trial(trial_id, TrialStatus.FAILED, None, failure_reason, now)
    if final is not None:
        objective_metrics(state.config, final, "final_measurement")
        roots = state.config.checkpoints.roots
        require_under_roots(final.checkpoint_path, roots, "final_measurement.checkpoint_path")
    message = "stopped early" if state.stop_requested else ""
    try:
        ended = tx.finish_trial(trial_id, TrialStatus.COMPLETED, final, message, now)
    except TrialStateError as e:  # the trial is ACTIVE and locked: it has no measurement
        raise FailedPreconditionError(
            f"trial {trial_id} has no measurements; report one before completing it"
        ) from e
    if final is not None and ended.final_measurement is not None and not agrees(final, ended.final_measurement):
        # finish_trial took the measurement already reported at that step: refusing rolls it back.
        raise FailedPreconditionError(
            f"final_measurement: trial {trial_id} already has a different measurement at step {final.step}; "
            "complete with that measurement, or without final_measurement"
        )
    return ended


def agrees(given: Measurement, recorded: Measurement) -> bool:
    """A final measurement naming a step already reported must carry what was reported there (a
    path left empty means "the recorded one")."""
    same_path = not given.checkpoint_path or given.checkpoint_path == recorded.checkpoint_path
    return given.step == recorded.step and same_path and same_metrics(given.metrics, recorded.metrics)


def is_repeat(trial: Trial, final: Measurement | None, failure_reason: str) -> bool:
    """A retried CompleteTrial whose first attempt already took effect."""
    if failure_reason:
        return trial.status is TrialStatus.FAILED and trial.status_message == failure_reason
    if trial.status is not TrialStatus.COMPLETED or trial.final_measurement is None:
        return False
    return final is None or agrees(final, trial.final_measurement)


def stop_trial(tx: Transaction, trial_id: int, worker: str, reason: str, now: datetime) -> Trial:
    """Stops an active trial (its reproduction is handed back); stopping a stopped trial is a
    repeat. A non-empty `worker` must be the holder. Raises NotFoundError and
    FailedPreconditionError."""
    tx.get_study(tx.get_trial(trial_id, with_measurements=False).study, lock=True)
    trial = tx.get_trial(trial_id, lock=True)
    if worker and trial.worker_id != worker:
        raise FailedPreconditionError(f"trial {trial_id} is held by worker {trial.worker_id!r}")
    if trial.status is TrialStatus.STOPPED:
        return trial
    if trial.status is not TrialStatus.ACTIVE:
        raise FailedPreconditionError(f"trial {trial_id} is {trial.status.value} and cannot be stopped")
    return tx.finish_trial(trial_id, TrialStatus.STOPPED, None, reason or DEFAULT_STOP_REASON, now)
