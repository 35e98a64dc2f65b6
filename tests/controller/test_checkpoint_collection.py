"""Checkpoint collection through the controller on a real storage (SQLite and PostgreSQL).

The property test drives random studies (random populations, opponent windows, generation limits)
through random interleavings of suggestions, reports, completions, stops, failures, lapsed
leases and collections, and checks after every step that nothing collected is ever handed out as
a warm start or used by an active trial.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbt_service.controller import Controller
from pbt_service.core.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from pbt_service.core.types import (
    AlgorithmConfig,
    CheckpointPolicy,
    CheckpointState,
    Measurement,
    Objective,
    ParameterSpec,
    ParameterType,
    StudyConfig,
    StudyState,
    Trial,
    TrialStatus,
)
from tests.controller.conftest import LEASE_SECONDS, config
from tests.fake_clock import FakeClock

ROOT = "/data/ckpt"
_names = itertools.count()


def study_config(population: int, k: int, max_generations: int, keep_best: int) -> StudyConfig:
    return StudyConfig(
        parameters=(ParameterSpec("lr", ParameterType.FLOAT, low=0.1, high=1.0),),
        objectives=(Objective("score"),),
        algorithm=AlgorithmConfig(
            population_size=population, opponent_generations=k, max_generations=max_generations, seed=7
        ),
        checkpoints=CheckpointPolicy(roots=(ROOT,), keep_best=keep_best),
    )


@dataclass
class Run:
    """The test's model of the study: which trials are active, what was collected."""

    app: Controller
    clock: FakeClock
    study: str
    active: dict[int, Trial] = field(default_factory=dict)
    steps: dict[int, int] = field(default_factory=dict)
    collected: set[str] = field(default_factory=set)

    def check_active(self) -> None:
        for trial in self.active.values():
            assert trial.warm_start_checkpoint_path not in self.collected, trial
            for step in range(1, self.steps.get(trial.id, 0) + 1):
                assert path(trial.id, step) not in self.collected

    def suggest(self, worker: int) -> None:
        for trial in self.app.suggest(self.study, f"w{worker}").trials:
            assert trial.warm_start_checkpoint_path not in self.collected, "handed out a collected checkpoint"
            self.active[trial.id] = trial

    def train(self, worker: int, score: float) -> None:
        """A whole trial: suggest, report two steps, complete."""
        before = set(self.active)
        self.suggest(worker)
        for trial_id in sorted(set(self.active) - before):
            trial = self.active[trial_id]
            for step in (1, 2):
                self.steps[trial_id] = step
                metrics = {"score": score + step + (trial_id % 5)}
                self.app.report(trial_id, trial.worker_id, Measurement(step, metrics, path(trial_id, step)))
            self.app.complete(trial_id, trial.worker_id)
            del self.active[trial_id]

    def report(self, pick: int, score: float) -> None:
        trial = self._pick(pick)
        if trial is None:
            return
        step = self.steps.get(trial.id, 0) + 1
        self.steps[trial.id] = step
        self.app.report(trial.id, trial.worker_id, Measurement(step, {"score": score}, path(trial.id, step)))

    def end(self, pick: int, how: str) -> None:
        trial = self._pick(pick)
        if trial is None:
            return
        if how == "complete" and self.steps.get(trial.id):
            self.app.complete(trial.id, trial.worker_id)
        elif how == "fail":
            self.app.complete(trial.id, trial.worker_id, failure_reason="boom")
        else:
            self.app.stop_trial(trial.id, reason="test")
        del self.active[trial.id]

    def lapse(self) -> None:
        """Every lease lapses; the next suggestion stops all active trials."""
        self.clock.advance(LEASE_SECONDS + 1)
        self.suggest(0)
        for trial_id in list(self.active):
            if self.app.get_trial(trial_id).status is not TrialStatus.ACTIVE:
                del self.active[trial_id]

    def collect(self) -> None:
        dry = self.app.collect_checkpoints(self.study, dry_run=True, limit=10_000)
        decided = self.app.collect_checkpoints(self.study, limit=10_000)
        assert {c.path for c in dry.checkpoints} == {c.path for c in decided.checkpoints}
        again = self.app.collect_checkpoints(self.study, limit=10_000)
        assert again.checkpoints == decided.checkpoints  # nothing new is decided right after
        paths = [c.path for c in decided.checkpoints]
        assert all(p.startswith(ROOT + "/") for p in paths)
        self.collected.update(paths)
        self.app.confirm_checkpoints_deleted(self.study, paths)
        assert self.app.collect_checkpoints(self.study, limit=10_000).checkpoints == ()

    def _pick(self, pick: int) -> Trial | None:
        if not self.active:
            return None
        return self.active[sorted(self.active)[pick % len(self.active)]]


def path(trial_id: int, step: int) -> str:
    return f"{ROOT}/trial-{trial_id}/ckpt-{step}"


_TRAIN = st.tuples(st.just("train"), st.integers(0, 3), st.floats(-10, 10))
OPERATIONS = st.one_of(
    _TRAIN, _TRAIN, _TRAIN, _TRAIN,
    st.tuples(st.just("suggest"), st.integers(0, 3)),
    st.tuples(st.just("report"), st.integers(0, 7), st.floats(-10, 10)),
    st.tuples(st.just("end"), st.integers(0, 7), st.sampled_from(["complete", "complete", "stop", "fail"])),
    st.tuples(st.just("lapse")),
    st.tuples(st.just("collect")),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    population=st.integers(2, 4),
    k=st.integers(1, 3),
    max_generations=st.sampled_from([0, 3, 5]),
    keep_best=st.integers(0, 2),
    operations=st.lists(OPERATIONS, min_size=20, max_size=120),
)
def test_nothing_collected_is_ever_handed_out_or_used(
    app: Controller, clock: FakeClock, population: int, k: int, max_generations: int, keep_best: int,
    operations: list[tuple[object, ...]],
) -> None:
    run = Run(app, clock, f"gc{next(_names)}")
    app.create_study(run.study, study_config(population, k, max_generations, keep_best))
    for operation in operations:
        name, *args = operation
        getattr(run, str(name))(*args)
        run.check_active()
    run.collect()
    run.check_active()
    trials = app.list_trials(run.study, page_size=1000).trials
    states = {m.checkpoint_path: m.checkpoint_state for t in trials for m in t.measurements}
    assert {p for p, s in states.items() if s is CheckpointState.DELETED} == run.collected & set(states)


def test_a_checkpoint_outside_the_roots_is_refused_and_nothing_is_written(app: Controller) -> None:
    app.create_study("roots", study_config(2, 1, 0, 1))
    (trial,) = app.suggest("roots", "w").trials
    for bad in ("/home/someone", f"{ROOT}/../etc", "relative/ckpt", f"{ROOT}2/x", ROOT):
        with pytest.raises(InvalidArgumentError, match="measurement.checkpoint_path"):
            app.report(trial.id, "w", Measurement(1, {"score": 1.0}, bad))
    assert app.get_trial(trial.id).measurements == ()
    app.report(trial.id, "w", Measurement(1, {"score": 1.0}, f"{ROOT}//trial/./ckpt-1"))
    with pytest.raises(InvalidArgumentError, match="final_measurement.checkpoint_path"):
        app.complete(trial.id, "w", Measurement(2, {"score": 1.0}, "/tmp/elsewhere"))
    assert app.get_trial(trial.id).status is TrialStatus.ACTIVE


def test_roots_are_validated_and_normalised_at_creation(app: Controller) -> None:
    for bad in (("relative",), ("/",), ("",)):
        with pytest.raises(InvalidArgumentError, match=r"config.checkpoints.roots\[0\]"):
            app.create_study(
                "bad", StudyConfig(config().parameters, config().objectives, checkpoints=CheckpointPolicy(roots=bad))
            )
    with pytest.raises(NotFoundError):
        app.get_study("bad")
    created = app.create_study(
        "ok", StudyConfig(config().parameters, config().objectives,
                          checkpoints=CheckpointPolicy(roots=("/data//ckpt/", "file:///models/x/../y")))
    )  # fmt: skip
    assert created.config.checkpoints.roots == ("/data/ckpt", "/models/y")
    assert app.get_study("ok").config.checkpoints.roots == ("/data/ckpt", "/models/y")


def test_pause_hands_out_nothing_new_and_resume_continues(app: Controller) -> None:
    app.create_study("p", config(population=2, max_generations=3))
    (first,) = app.suggest("p", "w1").trials
    assert app.pause_study("p").state is StudyState.PAUSED
    assert app.pause_study("p").state is StudyState.PAUSED  # a repeat is a no-op
    paused = app.suggest("p", "w2")
    assert paused.trials == () and paused.study_paused and not paused.study_done
    assert app.suggest("p", "w1").trials == (first,)  # the worker's own trial comes back
    app.report(first.id, "w1", Measurement(1, {"score": 1.0}))
    assert app.complete(first.id, "w1").status is TrialStatus.COMPLETED  # active ones may finish
    assert app.get_study("p").state is StudyState.PAUSED and app.get_study("p").trial_count == 1
    assert app.resume_study("p").state is StudyState.ACTIVE
    assert [t.generation for t in app.suggest("p", "w2").trials] == [0]
    assert app.get_study("p").trial_count == 2


def test_a_study_whose_workers_died_resumes_where_it_was(app: Controller, clock: FakeClock) -> None:
    app.create_study("d", config(population=2, max_generations=2))
    for worker in ("a", "b"):
        (trial,) = app.suggest("d", worker).trials
        app.report(trial.id, worker, Measurement(1, {"score": 1.0}))
        app.complete(trial.id, worker)
    (child,) = app.suggest("d", "a").trials
    app.pause_study("d")
    clock.advance(LEASE_SECONDS + 1)  # every worker died while the study was paused
    assert app.suggest("d", "c").trials == ()
    assert app.get_trial(child.id).status is TrialStatus.STOPPED
    app.resume_study("d")
    (again,) = app.suggest("d", "c").trials
    assert again.generation == 1 and again.initiator_parent_trial_id == child.initiator_parent_trial_id


def test_a_done_study_cannot_be_paused_or_resumed(app: Controller) -> None:
    app.create_study("done", config(population=2, max_trials=1))
    (trial,) = app.suggest("done", "w").trials
    app.report(trial.id, "w", Measurement(1, {"score": 1.0}))
    app.complete(trial.id, "w")
    assert app.suggest("done", "w").study_done
    for change in (app.pause_study, app.resume_study):
        with pytest.raises(FailedPreconditionError, match="done"):
            change("done")
    assert app.get_study("done").state is StudyState.DONE
    with pytest.raises(NotFoundError):
        app.pause_study("missing")
