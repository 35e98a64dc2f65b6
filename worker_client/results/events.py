"""What happened to a member when each trial was created: the PBT events a plot marks.

A trial of generation g > 0 continues the slot of its initiator (`initiator_parent_trial_id`) and
warm-starts from `parent_trial_id`. Comparing the two, and the hyperparameters with the parent's,
tells exploit (weights copied from another member), explore (hyperparameters changed) and restart
(a fresh line: a diverged match or a rejuvenation) apart without any extra column.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from pbt_service.core.types import Trial


class Event(enum.Enum):
    START = "start"
    """Generation 0: sampled from the prior."""
    CONTINUE = "continue"
    """The initiator's own line, same hyperparameters."""
    EXPLORE = "explore"
    """The initiator's own line, new hyperparameters."""
    EXPLOIT = "exploit"
    """Warm-started from another member (its hyperparameters then explored, or not)."""
    RESTART = "restart"
    """A fresh line in a later generation: no parent checkpoint."""


def event_of(trial: Trial, by_id: Mapping[int, Trial]) -> Event:
    """The event that created `trial`; `by_id` holds its parent when there is one (a parent missing
    from it counts as exploit only when the ids differ)."""
    if trial.generation == 0 and trial.parent_trial_id is None:
        return Event.START
    if trial.parent_trial_id is None:
        return Event.RESTART
    if trial.initiator_parent_trial_id is not None and trial.parent_trial_id != trial.initiator_parent_trial_id:
        return Event.EXPLOIT
    parent = by_id.get(trial.parent_trial_id)
    if parent is not None and dict(parent.hparams) != dict(trial.hparams):
        return Event.EXPLORE
    return Event.CONTINUE
