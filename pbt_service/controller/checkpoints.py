"""Checkpoint garbage collection (paper section 3.7): decide under the study lock, record, confirm.

The service decides from the trials alone which checkpoints no trial can need
(`core.garbage_collection`) and records the decision before anyone deletes anything, so a
suggestion can never hand out a checkpoint that is being deleted and a query can say "deleted"
instead of handing out a dangling path. The files are deleted by whoever sees them (the `gc`
command, or workers that collect as they go), who then confirms; a collector killed half way
leaves COLLECTING checkpoints that the next collection returns again.
"""

from __future__ import annotations

import logging

from pbt_service.core import garbage_collection
from pbt_service.core.garbage_collection import CheckpointRef, Collection
from pbt_service.core.types import StudyState
from pbt_service.store.base import Transaction

log = logging.getLogger(__name__)


def collect(tx: Transaction, study_name: str, *, dry_run: bool, limit: int) -> Collection:
    """Decides and records (unless `dry_run`) which checkpoints of the study are collectable now,
    and returns those not yet confirmed deleted. Raises NotFoundError."""
    study = tx.get_study(study_name, lock=not dry_run)
    view = tx.collection_view(study_name)
    decision = garbage_collection.decide(
        view.trials, study.config, live_in_generation_zero=view.live_in_generation_zero,
        done=study.state is StudyState.DONE,
    )  # fmt: skip
    if not dry_run and decision.collect:
        tx.mark_checkpoints_collecting([(ref.trial_id, ref.step) for ref in decision.collect])
        log.info("study %s: %d checkpoints decided collectable", study_name, len(decision.collect))
    by_path: dict[str, CheckpointRef] = {}
    for ref in sorted((*decision.pending, *decision.collect), key=lambda r: (r.trial_id, r.step)):
        by_path.setdefault(ref.path, ref)
    refs = tuple(by_path.values())
    return Collection(refs[:limit], study.config.checkpoints.roots, decision.kept, len(refs) > limit)


def confirm_deleted(tx: Transaction, study_name: str, paths: list[str]) -> int:
    """Records that the checkpoints at `paths` are gone; a repeat changes nothing. Only paths the
    collector decided on change state. Raises NotFoundError."""
    tx.get_study(study_name)
    return tx.mark_checkpoints_deleted(study_name, paths)
