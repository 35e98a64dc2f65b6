"""Deleting the checkpoints the service decided no trial can need (paper section 3.7).

The service decides and records (`CollectCheckpoints`); this side, which sees the files, deletes
them and confirms (`ConfirmCheckpointsDeleted`). Deletion is confined to the checkpoint roots:
the study's, or those given explicitly (`pbt-results gc --root`); a study without roots is not
collected at all unless roots are given. Every path is checked again on the file system (symlinks
resolved) by `CheckpointFiles` right before it is deleted, and a refusal is reported, never
skipped silently. A run killed half way leaves decided checkpoints unconfirmed: the next run gets
them again, finds some gone, and finishes.

Example:
    with PbtClient("localhost:50051") as client:
        report = collect_garbage(client, "digits", dry_run=True)
        print(format_report(report))
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pbt_service.core.checkpoint_paths import is_under_roots, normalize_roots
from worker_client.checkpoint_files import CheckpointFiles, FileState, LocalFiles, OutsideRootsError
from worker_client.client import PbtClient

log = logging.getLogger(__name__)

DELETED, WOULD_DELETE, GONE, REFUSED = "deleted", "would delete", "already gone", "refused"


class NoRootsError(ValueError):
    """The study declares no checkpoint roots and none were given: nothing may be deleted."""


@dataclass(frozen=True)
class CollectedCheckpoint:
    """What happened to one collectable checkpoint: `action` is one of DELETED, WOULD_DELETE,
    GONE or REFUSED (with `reason`); `size` in bytes (freed, or that would be freed)."""

    path: str
    trial_id: int
    step: int
    action: str
    size: int = 0
    reason: str = ""


@dataclass(frozen=True)
class CollectionReport:
    rows: tuple[CollectedCheckpoint, ...]
    kept: int
    roots: tuple[str, ...]
    dry_run: bool
    more: bool = False
    """A dry run saw only the first batch: more checkpoints are collectable."""

    def count(self, action: str) -> int:
        return sum(1 for r in self.rows if r.action == action)

    @property
    def bytes_freed(self) -> int:
        return sum(r.size for r in self.rows if r.action in (DELETED, WOULD_DELETE))


def roots_problem(workdir: Path, study: str, roots: Sequence[str], *, collect: bool) -> str | None:
    """Why a worker writing under `workdir` cannot run with these roots, or None: every checkpoint
    outside the study's roots would be refused, and collecting needs roots."""
    if roots and not is_under_roots(str(workdir.resolve() / study), roots):
        return (
            f"workdir {workdir.resolve()} is not inside a checkpoint root of study {study!r} "
            f"({', '.join(roots)}): the service would refuse every checkpoint; choose a workdir inside one"
        )
    if collect and not roots:
        return f"collecting checkpoints needs study {study!r} to declare checkpoint roots (config.checkpoints.roots)"
    return None


def collection_roots(client: PbtClient, study: str, roots: Sequence[str] = ()) -> tuple[str, ...]:
    """The roots to confine deletion to: `roots` when given (normalised), else the study's.
    Raises NoRootsError when there are none, and InvalidArgumentError (a ValueError) for a bad root."""
    if roots:
        return normalize_roots(roots, "--root")
    declared = client.get_study(study).config.checkpoints.roots
    if not declared:
        raise NoRootsError(
            f"study {study!r} declares no checkpoint roots, so nothing is deleted: give the directories "
            "that hold its checkpoints with --root DIR (repeatable), or create the study with "
            "config.checkpoints.roots"
        )
    return declared


def collect_garbage(
    client: PbtClient,
    study: str,
    *,
    roots: Sequence[str] = (),
    dry_run: bool = False,
    files: CheckpointFiles | None = None,
    batch: int = 1000,
) -> CollectionReport:
    """Deletes the study's collectable checkpoints under the roots (see `collection_roots`) and
    confirms them to the service, batch by batch; with `dry_run` the service records nothing and
    nothing is deleted. Raises NoRootsError before anything is decided when no roots apply."""
    allowed = collection_roots(client, study, roots)
    files = files or LocalFiles()
    rows: list[CollectedCheckpoint] = []
    while True:
        collection = client.collect_checkpoints(study, dry_run=dry_run, max_checkpoints=batch)
        confirmed: list[str] = []
        for ref in collection.checkpoints:
            row = _collect_one(files, ref.path, ref.trial_id, ref.step, allowed, dry_run)
            rows.append(row)
            if row.action in (DELETED, GONE):
                confirmed.append(row.path)
        if confirmed:
            client.confirm_checkpoints_deleted(study, confirmed)
        if dry_run or not collection.truncated or not confirmed:
            return CollectionReport(tuple(rows), collection.kept, allowed, dry_run, more=collection.truncated)


def _collect_one(
    files: CheckpointFiles, path: str, trial_id: int, step: int, roots: Sequence[str], dry_run: bool
) -> CollectedCheckpoint:
    check = files.inspect(path, roots)
    if check.state is FileState.MISSING:
        return CollectedCheckpoint(path, trial_id, step, GONE)
    if check.state is FileState.OUTSIDE_ROOTS:
        log.warning("refused to delete %s (trial %s): %s", path, trial_id, check.reason)
        return CollectedCheckpoint(path, trial_id, step, REFUSED, reason=check.reason)
    if dry_run:
        return CollectedCheckpoint(path, trial_id, step, WOULD_DELETE, check.size)
    try:
        freed = files.delete(path, roots)
    except OutsideRootsError as error:
        log.warning("refused to delete %s (trial %s): %s", path, trial_id, error)
        return CollectedCheckpoint(path, trial_id, step, REFUSED, reason=str(error))
    except OSError as error:
        log.warning("could not delete %s (trial %s): %s", path, trial_id, error)
        return CollectedCheckpoint(path, trial_id, step, REFUSED, reason=f"delete failed: {error}")
    return CollectedCheckpoint(path, trial_id, step, DELETED, freed)


def format_report(report: CollectionReport) -> str:
    """A table of what was (or would be) deleted or refused, and a summary line."""
    lines = [f"{'action':<13} {'bytes':>12} {'trial':>8} {'step':>8}  path"]
    for r in report.rows:
        reason = f"  ({r.reason})" if r.reason else ""
        lines.append(f"{r.action:<13} {r.size:>12} {r.trial_id:>8} {r.step:>8}  {r.path}{reason}")
    verb = WOULD_DELETE if report.dry_run else DELETED
    deleted = report.count(WOULD_DELETE if report.dry_run else DELETED)
    more = " (first batch only; more are collectable)" if report.dry_run and report.more else ""
    lines.append(
        f"{verb} {deleted} checkpoints, {_size(report.bytes_freed)}{more}; kept {report.kept}; "
        f"refused {report.count(REFUSED)}; already gone {report.count(GONE)}; roots: {', '.join(report.roots)}"
    )
    return "\n".join(lines)


def _size(n: int) -> str:
    """Bytes in the largest binary unit that keeps the number at or above 1."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"
