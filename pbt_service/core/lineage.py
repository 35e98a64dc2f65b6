"""Trial dependency graph (paper section 3.9): the replay plan of one or more final trials.

Every trial but a root warm-starts from its parent's final checkpoint, and a parent is always
older than its child, so the graph is a forest. The replay plan of a set of final trials is the
union of their lineages in topological order: each trial once, parents before children, so the
ancestors several finals share (an ensemble of the last generation, say) are trained once.
One final's plan is its hyperparameter schedule.

Example:
    >>> from pbt_service.core.types import Measurement, Trial, TrialStatus
    >>> def trial(id: int, parent: int | None, step: int) -> Trial:
    ...     return Trial(id, "s", id, 0, TrialStatus.COMPLETED, {"lr": 0.1}, parent_trial_id=parent,
    ...                  final_measurement=Measurement(step, {}))
    >>> trials = {1: trial(1, None, 4), 2: trial(2, 1, 8), 3: trial(3, 1, 8)}
    >>> [(s.trial_id, s.start_step, s.end_step) for s in replay_plan([2, 3], trials.__getitem__).segments]
    [(1, 0, 4), (2, 4, 8), (3, 4, 8)]
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from functools import cached_property

from pbt_service.core.errors import InvalidArgumentError, NotFoundError, PbtError
from pbt_service.core.types import ParamValue, Trial


class MissingTrialError(NotFoundError, ValueError):
    """A trial a plan needs does not exist: a final, or an ancestor of one (then the message
    names the final whose lineage needed it). A `KeyError` like every not-found, and a
    `ValueError` because for an ancestor it is bad data rather than a bad request."""

    def __init__(self, message: str, *, ancestor_of: int | None = None) -> None:
        super().__init__(message)
        self.ancestor_of = ancestor_of
        """The final whose lineage needed the missing trial; None when the final itself is missing."""


class CorruptLineageError(PbtError, ValueError):
    """The stored parent links cannot be right: they loop, or a child ends before its parent."""


@dataclass(frozen=True)
class PlanSegment:
    """Training by trial `trial_id` from `start_step` (where its warm-start segment ended; 0 for a
    root) to `end_step` (its final measurement's step, else its last measurement's) with `hparams`."""

    trial_id: int
    generation: int
    start_step: int
    end_step: int
    hparams: dict[str, ParamValue]
    warm_start_trial_id: int | None


ScheduleSegment = PlanSegment
"""A segment of one trial's schedule, which is the plan of that one final trial."""


@dataclass(frozen=True)
class ReplayPlan:
    """The segments to train, in an order where each warm-start segment comes first, and the final
    trials they lead to. Construction checks that; a bad plan raises InvalidArgumentError naming
    the segment and the problem."""

    finals: tuple[int, ...]
    segments: tuple[PlanSegment, ...]

    def __post_init__(self) -> None:
        _check(self.finals, self.segments)

    @cached_property
    def _by_id(self) -> dict[int, PlanSegment]:
        return {segment.trial_id: segment for segment in self.segments}

    def segment(self, trial_id: int) -> PlanSegment:
        """The segment of `trial_id`; raises KeyError when the plan does not train it."""
        return self._by_id[trial_id]

    def chain(self, final_id: int) -> tuple[PlanSegment, ...]:
        """The lineage of `final_id` within the plan, root first: that final's schedule."""
        chain = [self._by_id[final_id]]
        while (parent := chain[-1].warm_start_trial_id) is not None:
            chain.append(self._by_id[parent])
        return tuple(reversed(chain))


def replay_plan(final_ids: Iterable[int], lookup: Callable[[int], Trial]) -> ReplayPlan:
    """The plan that re-trains every trial in `final_ids` (duplicates dropped, order kept): the
    union of their lineages, parents before children, ties by trial id.

    `lookup(trial_id)` returns the trial or raises KeyError. Raises MissingTrialError naming the
    missing trial (and the final that needed it), CorruptLineageError when parent links loop or a
    trial ends before its parent, InvalidArgumentError when `final_ids` is empty.
    """
    finals = tuple(dict.fromkeys(final_ids))
    if not finals:
        raise InvalidArgumentError("a replay plan needs at least one final trial")
    trials: dict[int, Trial] = {}
    for final_id in finals:
        if final_id not in trials:
            for trial in _ancestry(_fetch(final_id, final_id, lookup), lookup, known=trials):
                trials[trial.id] = trial
    return ReplayPlan(finals, _segments(_topological_order(trials)))


def lineage(trial: Trial, lookup: Callable[[int], Trial]) -> list[Trial]:
    """The chain of warm-start parents ending at `trial`, root first. Raises as `replay_plan`."""
    return list(reversed(_ancestry(trial, lookup, known=())))


def schedule(chain: list[Trial]) -> list[ScheduleSegment]:
    """The hyperparameter schedule along a lineage (root first): the plan of its last trial."""
    if not chain:
        return []
    by_id = {trial.id: trial for trial in chain}
    return list(replay_plan([chain[-1].id], by_id.__getitem__).segments)


def _fetch(trial_id: int, final_id: int, lookup: Callable[[int], Trial]) -> Trial:
    try:
        return lookup(trial_id)
    except KeyError:
        if trial_id == final_id:
            raise MissingTrialError(f"trial {trial_id} not found") from None
        raise MissingTrialError(
            f"trial {trial_id}, an ancestor of trial {final_id}, not found", ancestor_of=final_id
        ) from None


def _ancestry(trial: Trial, lookup: Callable[[int], Trial], known: Container[int]) -> list[Trial]:
    """`trial` and its ancestors, child first, up to a root or up to (not including) a trial in
    `known`, whose own ancestors were fetched already."""
    chain = [trial]
    seen = {trial.id}
    while (parent_id := chain[-1].parent_trial_id) is not None and parent_id not in known:
        if parent_id in seen:
            raise CorruptLineageError(
                f"corrupt data: the parent links of trial {trial.id} loop through trial {parent_id}"
            )
        seen.add(parent_id)
        chain.append(_fetch(parent_id, trial.id, lookup))
    return chain


def _topological_order(trials: dict[int, Trial]) -> list[Trial]:
    """Kahn's algorithm over the forest, smallest ready id first, so the order is deterministic."""
    children: dict[int, list[int]] = {}
    ready: list[int] = []
    for trial in trials.values():
        if trial.parent_trial_id is None:
            ready.append(trial.id)
        else:
            children.setdefault(trial.parent_trial_id, []).append(trial.id)
    heapq.heapify(ready)
    order: list[Trial] = []
    while ready:
        trial_id = heapq.heappop(ready)
        order.append(trials[trial_id])
        for child in children.get(trial_id, ()):
            heapq.heappush(ready, child)
    return order


def _segments(order: list[Trial]) -> tuple[PlanSegment, ...]:
    ends: dict[int, int] = {}
    segments: list[PlanSegment] = []
    for trial in order:
        parent = trial.parent_trial_id
        start = ends[parent] if parent is not None else 0
        last = trial.final_measurement or (trial.measurements[-1] if trial.measurements else None)
        end = last.step if last is not None else start
        if end < start:
            raise CorruptLineageError(
                f"corrupt data: trial {trial.id} ends at step {end}, before its parent trial {parent} (step {start})"
            )
        ends[trial.id] = end
        segments.append(PlanSegment(trial.id, trial.generation, start, end, dict(trial.hparams), parent))
    return tuple(segments)


def _check(finals: tuple[int, ...], segments: tuple[PlanSegment, ...]) -> None:
    index: dict[int, PlanSegment] = {}
    for position, segment in enumerate(segments):
        where = f"segment {position} (trial {segment.trial_id})"
        if segment.trial_id in index:
            raise InvalidArgumentError(f"{where}: trial {segment.trial_id} appears twice")
        if segment.start_step < 0 or segment.end_step < segment.start_step:
            raise InvalidArgumentError(
                f"{where}: steps {segment.start_step}-{segment.end_step} must be non-negative and end >= start"
            )
        parent = segment.warm_start_trial_id
        if parent is None:
            if segment.start_step != 0:
                raise InvalidArgumentError(f"{where}: starts at step {segment.start_step} without a warm start")
        elif parent not in index:
            raise InvalidArgumentError(
                f"{where}: warm-starts from trial {parent}, which is not an earlier segment"
            )
        elif index[parent].end_step != segment.start_step:
            raise InvalidArgumentError(
                f"{where}: starts at step {segment.start_step} but trial {parent} ends at {index[parent].end_step}"
            )
        index[segment.trial_id] = segment
    if not finals:
        raise InvalidArgumentError("no final trials")
    if missing := [final for final in finals if final not in index]:
        raise InvalidArgumentError(f"final trials {missing} have no segment")
