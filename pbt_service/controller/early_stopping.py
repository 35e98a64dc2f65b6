"""The early-stopping use case: which active trials of a study should stop now."""

from __future__ import annotations

from pbt_service.controller.reports import peer_window
from pbt_service.core import early_stopping
from pbt_service.core.types import Trial
from pbt_service.store.base import Transaction


def early_stopping_trials(tx: Transaction, study: str) -> list[Trial]:
    """The active trials that should stop, marked so their workers are told. Peers are read
    once, for the union of the active trials' windows: a few generations, whatever the history.
    Raises NotFoundError."""
    config = tx.get_study(study).config
    active = tx.active_trials(study)
    if not config.algorithm.median_stopping.enabled or not active:
        return [t for t in active if t.stop_requested]
    windows = [peer_window(config, t.generation) for t in active]
    peers = tx.completed_trials(study, min(w[0] for w in windows), max(w[1] for w in windows))
    stopping: list[Trial] = []
    for trial, (low, high) in zip(active, windows, strict=True):
        in_window = [p for p in peers if low <= p.generation <= high]
        if trial.stop_requested or early_stopping.should_stop(config, trial, in_window):
            stopping.append(trial)
    tx.request_stop([t.id for t in stopping if not t.stop_requested])
    return stopping
