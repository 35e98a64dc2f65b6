"""The collector's rule on hand-built populations: what may still be a parent, or used, is kept."""

from __future__ import annotations

from pbt_service.core.garbage_collection import decide, initiating_floor, needed_paths
from pbt_service.core.types import (
    AlgorithmConfig,
    CheckpointPolicy,
    CheckpointState,
    Measurement,
    Objective,
    ParameterSpec,
    ParameterType,
    StudyConfig,
    Trial,
    TrialStatus,
)

COMPLETED, ACTIVE, STOPPED = TrialStatus.COMPLETED, TrialStatus.ACTIVE, TrialStatus.STOPPED


def config(population: int = 2, k: int = 1, keep_best: int = 0, max_generations: int = 0) -> StudyConfig:
    return StudyConfig(
        parameters=(ParameterSpec("x", ParameterType.FLOAT, low=0.0, high=1.0),),
        objectives=(Objective("score"),),
        algorithm=AlgorithmConfig(
            population_size=population, opponent_generations=k, max_generations=max_generations
        ),
        checkpoints=CheckpointPolicy(keep_best=keep_best),
    )


def trial(
    id: int,
    generation: int,
    status: TrialStatus = COMPLETED,
    *,
    score: float = 0.0,
    steps: int = 2,
    initiated: int | None = None,
    warm: str = "",
    states: dict[int, CheckpointState] | None = None,
) -> Trial:
    """A trial with `steps` measurements at /c/<id>/<step>; COMPLETED ones end with the last."""
    state = states or {}
    measurements = tuple(
        Measurement(s, {"score": score}, f"/c/{id}/{s}", checkpoint_state=state.get(s, CheckpointState.PRESENT))
        for s in range(1, steps + 1)
    )
    final = measurements[-1] if status is COMPLETED and measurements else None
    return Trial(
        id=id, study="s", number=id, generation=generation, status=status, hparams={"x": 0.5},
        warm_start_checkpoint_path=warm, measurements=measurements, final_measurement=final,
        initiated_trial_id=initiated,
    )  # fmt: skip


def paths(refs: object) -> set[str]:
    return {ref.path for ref in refs}  # type: ignore[attr-defined]


def test_non_final_checkpoints_of_ended_trials_are_collected_and_active_ones_kept() -> None:
    trials = [
        trial(1, 0, initiated=3), trial(2, 0, initiated=None),
        trial(3, 1, ACTIVE, warm="/c/1/2"), trial(4, 1, STOPPED),
    ]  # fmt: skip
    decision = decide(trials, config(k=1), live_in_generation_zero=2, done=False)
    assert paths(decision.collect) == {"/c/1/1", "/c/2/1", "/c/4/1", "/c/4/2"}
    kept = needed_paths(trials, config(k=1), live_in_generation_zero=2, done=False)
    # Trial 3 is active (its checkpoints and its warm start stay); trial 2's child stopped, so 2
    # initiates again and its final stays; trial 1 is the warm start of 3 and in 2's window.
    assert {"/c/3/1", "/c/3/2", "/c/1/2", "/c/2/2"} <= kept


def test_finals_older_than_the_opponent_window_of_every_possible_initiator_are_collected() -> None:
    # Generations 0 and 1 have initiated completed children; generation 2 initiates next.
    trials = [
        trial(1, 0, initiated=3), trial(2, 0, initiated=4), trial(3, 1, initiated=5), trial(4, 1, initiated=6),
        trial(5, 2), trial(6, 2),
    ]  # fmt: skip
    assert initiating_floor(trials, config(), live_in_generation_zero=2, done=False) == 2
    k1 = needed_paths(trials, config(k=1), live_in_generation_zero=2, done=False)
    assert k1 == {"/c/5/2", "/c/6/2"}
    k2 = needed_paths(trials, config(k=2), live_in_generation_zero=2, done=False)
    assert k2 == {"/c/3/2", "/c/4/2", "/c/5/2", "/c/6/2"}


def test_an_initiator_whose_child_is_active_may_initiate_again() -> None:
    trials = [trial(1, 0, initiated=3), trial(2, 0, initiated=4), trial(3, 1, ACTIVE), trial(4, 1)]
    assert initiating_floor(trials, config(), live_in_generation_zero=2, done=False) == 0
    assert "/c/1/2" in needed_paths(trials, config(k=1), live_in_generation_zero=2, done=False)


def test_an_unfilled_generation_zero_keeps_generation_zero() -> None:
    trials = [trial(1, 0, initiated=2), trial(2, 1, initiated=None)]
    assert initiating_floor(trials, config(population=3), live_in_generation_zero=1, done=False) == 0


def test_the_last_generation_never_initiates_and_a_done_study_keeps_only_the_best() -> None:
    trials = [trial(1, 0, initiated=3, score=1.0), trial(2, 0, initiated=4, score=5.0),
              trial(3, 1, score=3.0), trial(4, 1, score=2.0)]  # fmt: skip
    last = config(k=1, max_generations=2)
    assert initiating_floor(trials, last, live_in_generation_zero=2, done=False) is None
    best_two = config(k=1, keep_best=2, max_generations=2)
    assert needed_paths(trials, best_two, live_in_generation_zero=2, done=True) == {"/c/2/2", "/c/3/2"}
    assert needed_paths(trials, config(keep_best=0), live_in_generation_zero=2, done=True) == set()


def test_decided_checkpoints_are_pending_until_deleted_and_never_when_needed() -> None:
    collecting = {1: CheckpointState.COLLECTING, 2: CheckpointState.DELETED}
    trials = [trial(1, 0, STOPPED, states=collecting), trial(2, 0, ACTIVE, warm="/c/1/1")]
    decision = decide(trials, config(), live_in_generation_zero=2, done=False)
    # /c/1/1 was decided before, but an active trial now uses that path: it is held back.
    assert decision.pending == () and decision.collect == ()
    alone = decide([trial(1, 0, STOPPED, states=collecting)], config(), live_in_generation_zero=2, done=False)
    assert paths(alone.pending) == {"/c/1/1"} and alone.collect == ()


def test_the_best_completed_finals_are_kept_for_serving() -> None:
    trials = [trial(i, 0, score=float(i), initiated=10 + i) for i in range(1, 5)]
    kept = needed_paths(trials, config(population=4, keep_best=2), live_in_generation_zero=4, done=True)
    assert kept == {"/c/4/2", "/c/3/2"}
