"""The global checkpoint collector's rule (paper section 3.7): which checkpoints no trial can need.

Pure: trials in, a decision out. The service applies it under the study lock and records the
decision; whoever sees the files deletes them. A checkpoint is needed, and kept, when

- it belongs to an ACTIVE trial (any of its checkpoints may still become the final one, and its
  evaluator may be reading it), or an ACTIVE trial warm-starts from it;
- it is the final checkpoint of a COMPLETED trial that can still be drawn as a parent: a trial
  that may still initiate a reproduction has generation g >= `initiating_floor`, and its
  tournament draws from generations g-k+1 .. g, so every final at generation
  >= floor - k + 1 is kept;
- it is the final checkpoint of one of the `keep_best` best completed trials (to serve them).

Who may still initiate: ACTIVE trials (once completed), COMPLETED trials that have not initiated
or whose child is still ACTIVE (a stopped or failed child hands the reproduction back), and new
generation-0 trials while generation 0 is not full. Trials in the last generation of a study
with `max_generations` never initiate. A DONE study initiates nothing.

The floor never goes down: new trials are only created at a generation above their initiator's
or in an unfilled generation 0, which the floor already covers. So a checkpoint decided
collectable is never needed later, whatever happens after the decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pbt_service.core.fitness import best_trials
from pbt_service.core.types import CheckpointState, StudyConfig, Trial, TrialStatus


@dataclass(frozen=True)
class CheckpointRef:
    """A measurement (trial and step) whose checkpoint lives at `path`."""

    path: str
    trial_id: int
    step: int


@dataclass(frozen=True)
class CollectionDecision:
    """`collect`: measurements whose checkpoints are decided collectable now (one entry per
    measurement; several may share a path). `pending`: measurements decided earlier and not yet
    confirmed deleted. `kept`: distinct present paths that stay."""

    collect: tuple[CheckpointRef, ...]
    pending: tuple[CheckpointRef, ...]
    kept: int


@dataclass(frozen=True)
class Collection:
    """The reply to a collection: checkpoints to delete (one per path, by trial and step), the
    study's roots, how many checkpoints stay, and whether more are waiting than it holds."""

    checkpoints: tuple[CheckpointRef, ...]
    roots: tuple[str, ...]
    kept: int
    truncated: bool


def initiating_floor(
    trials: Iterable[Trial], config: StudyConfig, *, live_in_generation_zero: int, done: bool
) -> int | None:
    """The lowest generation of a trial that may still initiate a reproduction; None when none can.

    `trials` must hold every ACTIVE trial and every COMPLETED trial that has not initiated or whose
    initiated child is ACTIVE."""
    if done:
        return None
    algorithm = config.algorithm
    limit = algorithm.max_generations - 1 if algorithm.max_generations > 0 else None
    trials = list(trials)
    active = {t.id for t in trials if t.status is TrialStatus.ACTIVE}
    generations = [
        t.generation
        for t in trials
        if (limit is None or t.generation < limit)
        and (
            t.status is TrialStatus.ACTIVE
            or (
                t.status is TrialStatus.COMPLETED
                and (t.initiated_trial_id is None or t.initiated_trial_id in active)
            )
        )
    ]
    if live_in_generation_zero < algorithm.population_size:
        generations.append(0)
    return min(generations, default=None)


def needed_paths(
    trials: Sequence[Trial], config: StudyConfig, *, live_in_generation_zero: int, done: bool
) -> set[str]:
    """The checkpoint paths no collection may touch (see the module docstring)."""
    needed: set[str] = set()
    for trial in trials:
        if trial.status is TrialStatus.ACTIVE:
            needed.add(trial.warm_start_checkpoint_path)
            needed.update(m.checkpoint_path for m in trial.measurements)
    completed = [t for t in trials if t.status is TrialStatus.COMPLETED and t.final_measurement is not None]
    floor = initiating_floor(trials, config, live_in_generation_zero=live_in_generation_zero, done=done)
    if floor is not None:
        lowest = floor - config.algorithm.opponent_generations + 1
        needed.update(_final_path(t) for t in completed if t.generation >= lowest)
    present = [t for t in completed if _final_state(t) is CheckpointState.PRESENT]
    best = best_trials(present, config.objectives, config.comparison)[: config.checkpoints.keep_best]
    needed.update(_final_path(t) for t in best)
    needed.discard("")
    return needed


def decide(
    trials: Sequence[Trial], config: StudyConfig, *, live_in_generation_zero: int, done: bool
) -> CollectionDecision:
    """What to collect now, given every trial of the study that still has a checkpoint not
    deleted, every ACTIVE trial and every COMPLETED trial that may initiate (with measurements).

    A path that is needed is never returned, not even as `pending` (a path reported again after
    it was decided, which checkpoints written once never are)."""
    needed = needed_paths(trials, config, live_in_generation_zero=live_in_generation_zero, done=done)
    collect: list[CheckpointRef] = []
    pending: list[CheckpointRef] = []
    kept: set[str] = set()
    for trial in trials:
        for m in trial.measurements:
            if not m.checkpoint_path or m.checkpoint_state is CheckpointState.DELETED:
                continue
            ref = CheckpointRef(m.checkpoint_path, trial.id, m.step)
            if m.checkpoint_path in needed:
                kept.add(m.checkpoint_path)
            elif m.checkpoint_state is CheckpointState.PRESENT:
                collect.append(ref)
            else:
                pending.append(ref)
    return CollectionDecision(tuple(collect), tuple(pending), len(kept))


def _final_path(trial: Trial) -> str:
    return trial.final_measurement.checkpoint_path if trial.final_measurement is not None else ""


def _final_state(trial: Trial) -> CheckpointState:
    """The state of the trial's final checkpoint as its measurement list records it (the final
    measurement alone may be read without it)."""
    final = trial.final_measurement
    if final is None:
        return CheckpointState.DELETED
    for m in trial.measurements:
        if m.step == final.step:
            return m.checkpoint_state
    return final.checkpoint_state
