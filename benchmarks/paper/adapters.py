"""A `Task` as each method's training code: the worker's trainer and evaluator (our service), a
static trial with intermediate reports (grid, random, Optuna), and the pieces Ray Tune's function
trainable uses. Written once so every method trains and evaluates the same way.

Seeds: a trial's initial state is seeded by (run seed, trial, "init") and each stretch of training
by (run seed, trial, first step), so a rerun repeats itself and two trials never share noise.

A checkpoint is a folder: the task's `state` file and `schedule.json`, the lineage's
hyperparameters step range by step range, which is how figure 7 reads the schedule of whichever
model is chosen, for our PBT and Ray's alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.paper.records import Event, EventLog, Schedule
from benchmarks.paper.tasks.base import Budget, Task
from pbt_service.core.search_space import is_active, topological_order
from worker_client import ParameterSpec, ParameterType, ParamValue, Scale, TrialContext

STATE_FILE = "state"
SCHEDULE_FILE = "schedule.json"


def derived_seed(*parts: object) -> int:
    """A 31-bit seed from any parts, stable across processes (unlike `hash`)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFF_FFFF


def active_hparams(parameters: Sequence[ParameterSpec], hparams: Mapping[str, ParamValue]) -> dict[str, ParamValue]:
    """Only the parameters whose condition holds (Ray samples every parameter every time)."""
    active: dict[str, ParamValue] = {}
    for spec in topological_order(parameters):
        if spec.name in hparams and is_active(spec, active):
            active[spec.name] = hparams[spec.name]
    return active


def midpoint(spec: ParameterSpec) -> ParamValue:
    """The grid's value for a parameter it does not vary: the middle of the range (geometric for
    LOG), the middle discrete value, the first category."""
    if spec.type is ParameterType.FLOAT:
        return float((spec.low * spec.high) ** 0.5 if spec.scale is Scale.LOG else (spec.low + spec.high) / 2)
    if spec.type is ParameterType.INTEGER:
        return int(round((spec.low + spec.high) / 2))
    value = spec.values[len(spec.values) // 2] if spec.type is ParameterType.DISCRETE else spec.values[0]
    return float(value) if spec.type is ParameterType.DISCRETE else str(value)


def learning_rate_spec(parameters: Sequence[ParameterSpec]) -> ParameterSpec:
    """The parameter the grid varies: the one named like a learning rate, else the first LOG float."""
    floats = [p for p in parameters if p.type is ParameterType.FLOAT and p.condition is None]
    for spec in floats:
        if spec.name in ("learning_rate", "lr") or "learning_rate" in spec.name:
            return spec
    logs = [p for p in floats if p.scale is Scale.LOG]
    if not logs and not floats:
        raise ValueError("the task has no unconditional float parameter for the grid")
    return (logs or floats)[0]


def save_checkpoint(task: Task, state: Any, schedule: Schedule, directory: Path) -> None:
    """Writes the checkpoint folder atomically: built beside it, then renamed into place."""
    temporary = directory.with_name(f".{directory.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    task.save(state, temporary / STATE_FILE)
    (temporary / SCHEDULE_FILE).write_text(json.dumps([[start, dict(h)] for start, h in schedule]))
    os.replace(temporary, directory)


def load_checkpoint(task: Task, directory: Path) -> tuple[Any, Schedule]:
    """The state and schedule `save_checkpoint` wrote."""
    raw = json.loads((directory / SCHEDULE_FILE).read_text())
    schedule: Schedule = tuple((int(start), dict(h)) for start, h in raw)
    return task.load(directory / STATE_FILE), schedule


def extend(schedule: Schedule, start: int, hparams: Mapping[str, ParamValue]) -> Schedule:
    """The schedule with a segment from `start` on, merged with the last one when unchanged."""
    if schedule and dict(schedule[-1][1]) == dict(hparams):
        return schedule
    return (*schedule, (start, dict(hparams)))


def metrics_of(task: Task, state: Any) -> dict[str, float]:
    """The task's metrics as plain floats (what the service and the records store)."""
    return {name: float(value) for name, value in task.evaluate(state).items()}


Reporter = Callable[[int, Mapping[str, float]], None]
"""Called after each interval with (interval index, metrics); may raise to stop the trial (a
pruner does)."""


def train_static(
    task: Task,
    hparams: Mapping[str, ParamValue],
    budget: Budget,
    run_seed: int,
    trial: str,
    log: EventLog,
    report: Reporter | None = None,
    limit: Callable[[], int] | None = None,
) -> Mapping[str, float]:
    """One trial with fixed hyperparameters from scratch: `budget.intervals` intervals of
    `budget.interval` steps, evaluated after each. `limit()` (when given) is the resource left to
    the whole method; the trial stops when it is spent. Returns the last metrics."""
    hparams = active_hparams(task.parameters, hparams)
    state = task.init(hparams, derived_seed(run_seed, trial, "init"))
    schedule: Schedule = ((0, dict(hparams)),)
    metrics: Mapping[str, float] = {}
    for index in range(budget.intervals):
        steps = budget.interval if limit is None else min(budget.interval, limit())
        if steps <= 0:
            break
        start = task.step_of(state)
        state = task.train(state, hparams, steps, derived_seed(run_seed, trial, start))
        log.add_trained(steps)
        metrics = metrics_of(task, state)
        log.add(Event(log.elapsed(), steps, task.step_of(state), trial, metrics, schedule))
        if report is not None:
            report(index, metrics)
    return metrics


class ServiceAdapter:
    """The trainer and evaluator our workers run: warm-start from the parent's checkpoint folder,
    train `ctx.steps`, write one checkpoint; the evaluator logs the event and returns the metrics
    to the service.

    The service asks a child whose parent is from an older generation to train more than one
    interval, so its lineage catches up with its generation; those steps are real resource, and
    they would add up to a fifth more than the budget. So every trial is granted at most what is
    left of `budget_steps`: once the budget is spent, trials write their parent's state unchanged
    (0 steps) until the service's generations run out. `spent_in_generation` is the generation of
    the first trial that got less than it asked for (None: the budget was never short).
    """

    def __init__(self, task: Task, run_seed: int, log: EventLog, budget_steps: int) -> None:
        self.task = task
        self.run_seed = run_seed
        self.log = log
        self.budget_steps = budget_steps
        self.spent_in_generation: int | None = None
        self._granted = 0
        self._lock = threading.Lock()
        self._fresh: dict[str, tuple[Any, Schedule, int]] = {}

    def _grant(self, steps: int, generation: int) -> int:
        with self._lock:
            granted = max(0, min(steps, self.budget_steps - self._granted))
            self._granted += granted
            if granted < steps and self.spent_in_generation is None:
                self.spent_in_generation = generation
            return granted

    def train(self, ctx: TrialContext) -> None:
        hparams = active_hparams(self.task.parameters, ctx.hparams)
        if ctx.warm_start_checkpoint_path:
            state, schedule = load_checkpoint(self.task, Path(ctx.warm_start_checkpoint_path))
        else:
            state, schedule = self.task.init(hparams, derived_seed(self.run_seed, ctx.trial_id, "init")), ()
        start = self.task.step_of(state)
        steps = self._grant(ctx.steps, ctx.generation)
        if steps:
            schedule = extend(schedule, start, hparams)
            state = self.task.train(state, hparams, steps, derived_seed(self.run_seed, ctx.trial_id, start))
            self.log.add_trained(steps)
        path = ctx.checkpoint_path(self.task.step_of(state))
        with self._lock:  # before the file appears: the evaluator thread may see it at once
            self._fresh[str(path)] = (state, schedule, steps)
        save_checkpoint(self.task, state, schedule, path)

    def evaluate(self, ctx: TrialContext, checkpoint: Path) -> dict[str, float]:
        with self._lock:
            cached = self._fresh.pop(str(checkpoint), None)
        if cached is None:
            state, schedule = load_checkpoint(self.task, checkpoint)
            trained = 0
        else:
            state, schedule, trained = cached
        metrics = metrics_of(self.task, state)
        self.log.add(Event(self.log.elapsed(), trained, self.task.step_of(state), str(ctx.trial_id), metrics,
                           schedule))
        return metrics
