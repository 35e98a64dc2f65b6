"""Use cases of a worker on its trial: report a measurement, heartbeat.

A report of a step already recorded is a repeat (a retried call): it changes nothing and
answers as the first one did.
"""

from __future__ import annotations

import logging
from datetime import datetime

from pbt_service import limits
from pbt_service.controller import leases
from pbt_service.controller.validation import objective_metrics
from pbt_service.core import early_stopping
from pbt_service.core.checkpoint_paths import require_under_roots
from pbt_service.core.types import Measurement, StudyConfig
from pbt_service.store.base import Transaction

log = logging.getLogger(__name__)


def peer_window(config: StudyConfig, generation: int) -> tuple[int, int]:
    """The generations whose completed trials a trial of `generation` is compared with."""
    return max(0, generation - config.algorithm.opponent_generations + 1), generation


def report(
    tx: Transaction, trial_id: int, worker: str, measurement: Measurement, now: datetime, lease_seconds: float
) -> bool:
    """Records the measurement and answers whether the trial should stop. Raises NotFoundError,
    InvalidArgumentError (an objective metric missing), FailedPreconditionError and LeaseLapsed."""
    trial = leases.renew(tx, trial_id, worker, now, lease_seconds, new_step=measurement.step)
    config = trial.config
    objective_metrics(config, measurement, "measurement")
    require_under_roots(measurement.checkpoint_path, config.checkpoints.roots, "measurement.checkpoint_path")
    recorded = tx.add_measurement(trial_id, measurement, now, max_measurements=limits.MAX_MEASUREMENTS_PER_TRIAL)
    if not recorded or trial.stop_requested:
        return trial.stop_requested
    if not config.algorithm.median_stopping.enabled:
        return False
    updated = tx.get_trial(trial_id)
    peers = tx.completed_trials(trial.study, *peer_window(config, trial.generation))
    if early_stopping.should_stop(config, updated, peers):
        tx.request_stop([trial_id])
        log.info("trial %s: median stopping rule asks it to stop", trial_id)
        return True
    return False


def heartbeat(tx: Transaction, trial_id: int, worker: str, now: datetime, lease_seconds: float) -> bool:
    """Renews the lease; answers whether the trial should stop. Raises as `report`."""
    return leases.renew(tx, trial_id, worker, now, lease_seconds).stop_requested
