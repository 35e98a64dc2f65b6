"""The replay plan of a set of final trials: the union of their lineages, each trial once, parents
first, steps chained; missing trials and loops are named."""

from __future__ import annotations

import doctest
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbt_service.core import lineage as lineage_module
from pbt_service.core.errors import InvalidArgumentError
from pbt_service.core.lineage import (
    CorruptLineageError,
    MissingTrialError,
    PlanSegment,
    ReplayPlan,
    lineage,
    replay_plan,
    schedule,
)
from pbt_service.core.types import Measurement, Trial, TrialStatus


def make_trial(
    trial_id: int, parent: int | None, end: int | None, *, final: bool = True, generation: int = 0
) -> Trial:
    """A trial ending at step `end`: by its final measurement, or (final=False) its last one;
    end=None means no measurement at all."""
    measurements = () if end is None else (Measurement(max(end - 1, 0), {"q": 0.0}), Measurement(end, {"q": 1.0}))
    return Trial(
        id=trial_id, study="s", number=trial_id, generation=generation, status=TrialStatus.COMPLETED,
        hparams={"h": float(trial_id)}, parent_trial_id=parent, measurements=measurements,
        final_measurement=measurements[-1] if final and measurements else None,
    )


@st.composite
def forests(draw: st.DrawFn) -> tuple[dict[int, Trial], dict[int, int], list[int]]:
    """Trials whose parents are older ones (lower index), ids shuffled so they need not follow the
    graph; the step each trial should end at; a non-empty list of finals (duplicates allowed)."""
    size = draw(st.integers(1, 25))
    ids = draw(st.permutations(range(1, size + 1)))
    trials: dict[int, Trial] = {}
    ends: dict[int, int] = {}
    for index, trial_id in enumerate(ids):
        parent = None if index == 0 else draw(st.none() | st.sampled_from(ids[:index]))
        start = 0 if parent is None else ends[parent]
        kind = draw(st.sampled_from(["final", "last", "none"]))
        end = start + draw(st.integers(1, 6)) if kind != "none" else None
        generation = 0 if parent is None else trials[parent].generation + 1
        trials[trial_id] = make_trial(trial_id, parent, end, final=kind == "final", generation=generation)
        ends[trial_id] = start if end is None else end
    finals = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=6))
    return trials, ends, finals


def chain_ids(trials: dict[int, Trial], final: int) -> list[int]:
    """The lineage of `final`, walked naively, root first."""
    ids = [final]
    while (parent := trials[ids[-1]].parent_trial_id) is not None:
        ids.append(parent)
    return ids[::-1]


@settings(max_examples=300, deadline=None)
@given(forests())
def test_the_plan_is_the_union_of_the_lineages_in_topological_order(
    forest: tuple[dict[int, Trial], dict[int, int], list[int]],
) -> None:
    trials, ends, finals = forest
    plan = replay_plan(finals, trials.__getitem__)
    order = [s.trial_id for s in plan.segments]
    union = {trial_id for final in finals for trial_id in chain_ids(trials, final)}

    assert plan.finals == tuple(dict.fromkeys(finals))
    assert len(order) == len(set(order)) and set(order) == union
    position = {trial_id: i for i, trial_id in enumerate(order)}
    placed: set[int] = set()
    for segment in plan.segments:
        trial = trials[segment.trial_id]
        parent = trial.parent_trial_id
        assert segment.warm_start_trial_id == parent
        assert segment.start_step == (0 if parent is None else plan.segment(parent).end_step)
        assert segment.end_step == ends[segment.trial_id]
        assert (segment.generation, segment.hparams) == (trial.generation, dict(trial.hparams))
        ready = {t for t in union - placed if trials[t].parent_trial_id is None or trials[t].parent_trial_id in placed}
        assert segment.trial_id == min(ready), "ties go to the smallest trial id"
        placed.add(segment.trial_id)
    assert all(position[p] < position[s.trial_id] for s in plan.segments if (p := s.warm_start_trial_id) is not None)
    for final in finals:
        assert [s.trial_id for s in plan.chain(final)] == chain_ids(trials, final)
        assert list(plan.chain(final)) == schedule(lineage(trials[final], trials.__getitem__))


def test_shared_ancestors_appear_once_and_a_final_may_be_an_ancestor_of_another() -> None:
    trials = {
        1: make_trial(1, None, 4), 2: make_trial(2, None, 4), 3: make_trial(3, 1, 8), 4: make_trial(4, 3, 12),
        5: make_trial(5, 3, 12), 6: make_trial(6, 2, 8),
    }
    plan = replay_plan([5, 4, 3, 5], trials.__getitem__)
    assert plan.finals == (5, 4, 3)
    assert [(s.trial_id, s.start_step, s.end_step, s.warm_start_trial_id) for s in plan.segments] == [
        (1, 0, 4, None), (3, 4, 8, 1), (4, 8, 12, 3), (5, 8, 12, 3),
    ]


def test_a_trial_without_a_final_measurement_ends_at_its_last_one_or_where_it_started() -> None:
    trials = {1: make_trial(1, None, 4), 2: make_trial(2, 1, 7, final=False), 3: make_trial(3, 1, None)}
    plan = replay_plan([2, 3], trials.__getitem__)
    assert [(s.start_step, s.end_step) for s in plan.segments] == [(0, 4), (4, 7), (4, 4)]


def lookup_without(trials: dict[int, Trial], missing: int) -> Callable[[int], Trial]:
    return {i: t for i, t in trials.items() if i != missing}.__getitem__


def test_a_missing_ancestor_is_named_with_the_final_that_needed_it() -> None:
    trials = {17: make_trial(17, None, 4), 30: make_trial(30, 17, 8), 42: make_trial(42, 30, 12)}
    with pytest.raises(MissingTrialError, match=r"^trial 17, an ancestor of trial 42, not found$") as caught:
        replay_plan([42], lookup_without(trials, 17))
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, ValueError)
    with pytest.raises(MissingTrialError, match=r"^trial 43 not found$"):
        replay_plan([42, 43], trials.__getitem__)
    with pytest.raises(MissingTrialError, match="trial 30, an ancestor of trial 42"):
        lineage(trials[42], lookup_without(trials, 30))


def test_a_loop_in_the_parent_links_is_corrupt_data() -> None:
    trials = {1: make_trial(1, 3, 4), 2: make_trial(2, 1, 8), 3: make_trial(3, 2, 12)}
    with pytest.raises(CorruptLineageError, match="corrupt data: the parent links of trial 3 loop"):
        replay_plan([3], trials.__getitem__)
    with pytest.raises(ValueError, match="loop"):
        lineage(trials[2], trials.__getitem__)


def test_a_child_that_ends_before_its_parent_is_corrupt_data() -> None:
    trials = {1: make_trial(1, None, 8), 2: make_trial(2, 1, 4)}
    with pytest.raises(CorruptLineageError, match="trial 2 ends at step 4, before its parent trial 1"):
        replay_plan([2], trials.__getitem__)


def test_no_finals_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError, match="at least one final"):
        replay_plan([], dict[int, Trial]().__getitem__)


def segment(trial_id: int, start: int, end: int, parent: int | None) -> PlanSegment:
    return PlanSegment(trial_id, 0, start, end, {"h": 1.0}, parent)


@pytest.mark.parametrize(
    ("finals", "segments", "problem"),
    [
        ((2,), (segment(2, 4, 8, 1), segment(1, 0, 4, None)), "warm-starts from trial 1, which is not an earlier"),
        ((1,), (segment(1, -1, 4, None),), "must be non-negative"),
        ((1,), (segment(1, 0, 4, None), segment(2, 4, 3, 1)), "end >= start"),
        ((1,), (segment(1, 0, 4, None), segment(2, 5, 8, 1)), "starts at step 5 but trial 1 ends at 4"),
        ((1,), (segment(1, 2, 4, None),), "starts at step 2 without a warm start"),
        ((1,), (segment(1, 0, 4, None), segment(1, 0, 4, None)), "appears twice"),
        ((3,), (segment(1, 0, 4, None),), r"final trials \[3\] have no segment"),
        ((), (segment(1, 0, 4, None),), "no final trials"),
    ],
)
def test_a_plan_checks_itself(finals: tuple[int, ...], segments: tuple[PlanSegment, ...], problem: str) -> None:
    with pytest.raises(InvalidArgumentError, match=problem):
        ReplayPlan(finals, segments)


def test_the_module_example_runs() -> None:
    result = doctest.testmod(lineage_module)
    assert result.attempted > 0 and result.failed == 0
