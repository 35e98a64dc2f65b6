"""Trial dependency graph (paper section 3.9.2): a trial's ancestry and its hyperparameter schedule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pbt_service.core.types import ParamValue, Trial


@dataclass(frozen=True)
class ScheduleSegment:
    """Training from `start_step` to `end_step` with `hparams`, done by trial `trial_id`."""

    trial_id: int
    generation: int
    start_step: int
    end_step: int
    hparams: dict[str, ParamValue]


def lineage(trial: Trial, lookup: Callable[[int], Trial]) -> list[Trial]:
    """The chain of warm-start parents ending at `trial`, root first. The graph is acyclic because
    a trial can only warm-start from an older one; a repeated id is reported as corrupt data."""
    chain = [trial]
    seen = {trial.id}
    while chain[-1].parent_trial_id is not None:
        parent_id = chain[-1].parent_trial_id
        if parent_id in seen:
            raise ValueError(f"trial {parent_id} appears twice in the lineage of trial {trial.id}")
        seen.add(parent_id)
        chain.append(lookup(parent_id))
    chain.reverse()
    return chain


def schedule(chain: list[Trial]) -> list[ScheduleSegment]:
    """The hyperparameter schedule along a lineage: each trial trains from its parent's final step
    to its own final step (its last measurement when it has not completed)."""
    segments: list[ScheduleSegment] = []
    start = 0
    for trial in chain:
        final = trial.final_measurement or (trial.measurements[-1] if trial.measurements else None)
        end = final.step if final is not None else start
        segments.append(ScheduleSegment(trial.id, trial.generation, start, end, dict(trial.hparams)))
        start = end
    return segments
