"""Global checkpoint garbage collection (paper section 3.7).

Reads every trial of a study and deletes the checkpoints that were already evaluated and can
never be needed again: every measured checkpoint of an ended trial except its final one (the one
children warm-start from and the one worth serving). Run it where the checkpoint paths are
visible (the shared file system the workers write to), periodically or at the end of a study.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from pbt_service.core.types import Trial, TrialStatus
from worker_client.client import PbtClient


@dataclass(frozen=True)
class CollectionReport:
    deleted: tuple[str, ...]
    kept_final: int
    missing: int


def collectable(trials: list[Trial]) -> tuple[list[str], int]:
    """Checkpoint paths safe to delete, and how many final checkpoints are kept. Active trials are
    left alone: their evaluator may still be reading, and their last checkpoint may become final."""
    keep = {t.final_measurement.checkpoint_path for t in trials if t.final_measurement is not None}
    keep |= {t.warm_start_checkpoint_path for t in trials if t.status is TrialStatus.ACTIVE}
    doomed = [
        m.checkpoint_path
        for t in trials
        if t.status is not TrialStatus.ACTIVE
        for m in t.measurements
        if m.checkpoint_path and m.checkpoint_path not in keep
    ]
    return sorted(set(doomed)), len(keep - {""})


def collect_garbage(client: PbtClient, study: str, *, dry_run: bool = False) -> CollectionReport:
    """Deletes the collectable checkpoints of `study` (files or directories)."""
    paths, kept = collectable(client.list_trials(study))
    deleted: list[str] = []
    missing = 0
    for name in paths:
        path = Path(name)
        if not path.exists():
            missing += 1
            continue
        if not dry_run:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        deleted.append(name)
    return CollectionReport(tuple(deleted), kept, missing)
