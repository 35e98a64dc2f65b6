"""What a run records and how one run becomes one row: the same selection, scoring and curves for
every method, so no method is judged by rules of its own.

Every method's adapter logs an `Event` each time it evaluates a model (every `budget.interval`
training steps). A run's result is computed from its events alone: the chosen model is the best
by the task's validation objectives among all evaluated models, its score is `task.score` (test
metrics where the task has them); the curves are the score of the model that would have been
chosen after each amount of resource (figure 4) or among models up to each training step
(figure 6).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.paper.tasks.base import Task
from benchmarks.paper.tasks.pareto import hypervolume
from worker_client import Comparison, Goal, ParamValue

Schedule = tuple[tuple[int, dict[str, ParamValue]], ...]
"""A model's hyperparameter schedule: (first step, hyperparameters) per segment of its lineage."""


@dataclass(frozen=True)
class Event:
    """One evaluation of one model. `trained`: steps trained for this model since the previous
    event of the same trial (its share of the resource); `step`: the model's global step."""

    seconds: float
    trained: int
    step: int
    trial: str
    metrics: Mapping[str, float]
    schedule: Schedule


class EventLog:
    """Thread-safe list of events (worker threads and Ray's result loop append to it)."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self._trained = 0

    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def add_trained(self, steps: int) -> None:
        """Counts steps as they are trained, evaluated or not (a stopped trial still spent them)."""
        with self._lock:
            self._trained += steps

    def add(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def trained(self) -> int:
        with self._lock:
            return self._trained

    def events(self) -> list[Event]:
        with self._lock:
            return sorted(self._events, key=lambda e: e.seconds)


@dataclass(frozen=True)
class MethodOutcome:
    """What a method hands back: its events, the steps it trained, and how many trials it ran."""

    events: list[Event]
    resource: int
    trials: int
    note: str = ""


@dataclass
class RunResult:
    """One (task, method, seed) run, as written to results.json. `status`: ok, skipped or failed;
    `note` says why for the last two, or what a method did differently (e.g. one objective)."""

    task: str
    method: str
    seed: int
    status: str
    note: str = ""
    score: float = math.nan
    hypervolume: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    resource: int = 0
    budget: int = 0
    trials: int = 0
    seconds: float = 0.0
    resource_curve: list[tuple[int, float]] = field(default_factory=list)
    step_curve: list[tuple[int, float]] = field(default_factory=list)
    schedule: list[tuple[int, dict[str, ParamValue]]] = field(default_factory=list)
    front: list[list[float]] = field(default_factory=list)

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> RunResult:
        result = RunResult(**{k: v for k, v in data.items() if k in RunResult.__dataclass_fields__})
        result.resource_curve = [(int(x), float(y)) for x, y in result.resource_curve]
        result.step_curve = [(int(x), float(y)) for x, y in result.step_curve]
        result.schedule = [(int(s), dict(h)) for s, h in result.schedule]
        return result


def selection_key(task: Task, metrics: Mapping[str, float]) -> tuple[float, ...]:
    """The validation objectives oriented to minimize, lexicographic; a diverged or missing
    metric ranks below every finite one."""
    key = []
    for objective in task.objectives:
        value = metrics.get(objective.metric, math.nan)
        if not math.isfinite(value):
            return (math.inf,) * len(task.objectives)
        key.append(-value if objective.goal is Goal.MAXIMIZE else value)
    return tuple(key)


def reported_point(task: Task, metrics: Mapping[str, float]) -> list[float]:
    """A model's objectives as the report shows them: `test_<metric>` where the task has it,
    oriented to minimize (the hypervolume's convention)."""
    point = []
    for objective in task.objectives:
        value = metrics.get(f"test_{objective.metric}", metrics.get(objective.metric, math.nan))
        point.append(-value if objective.goal is Goal.MAXIMIZE else value)
    return point


def pareto_front(keys: Sequence[tuple[float, ...]]) -> list[int]:
    """Indices of the non-dominated finite keys (minimization)."""
    front = []
    for i, a in enumerate(keys):
        if not all(math.isfinite(v) for v in a):
            continue
        dominated = any(
            all(x <= y for x, y in zip(b, a, strict=True)) and b != a for b in keys if all(map(math.isfinite, b))
        )
        if not dominated:
            front.append(i)
    return front


def summarize(
    task: Task, method: str, seed: int, budget: int, outcome: MethodOutcome, seconds: float
) -> RunResult:
    """One run's row and curves from its events (see the module docstring)."""
    events = outcome.events
    result = RunResult(task.name, method, seed, "ok", outcome.note, resource=outcome.resource, budget=budget,
                       trials=outcome.trials, seconds=seconds)
    if not events:
        result.status, result.note = "failed", (outcome.note + "; " if outcome.note else "") + "no model evaluated"
        return result
    keys = [selection_key(task, e.metrics) for e in events]
    best = min(range(len(events)), key=lambda i: keys[i])
    result.metrics = {k: float(v) for k, v in events[best].metrics.items()}
    result.score = _score(task, events[best].metrics)
    result.schedule = [(start, dict(h)) for start, h in events[best].schedule]
    result.resource_curve = _resource_curve(task, events, keys)
    result.step_curve = _step_curve(task, events, keys)
    if task.comparison is Comparison.PARETO:
        front = pareto_front(keys)
        result.front = [reported_point(task, events[i].metrics) for i in front]
        reference = getattr(task, "reference_point", None)
        if reference is not None:
            result.hypervolume = hypervolume(result.front, reference)
    return result


def _score(task: Task, metrics: Mapping[str, float]) -> float:
    value = task.score(metrics)
    return float(value) if math.isfinite(value) else math.nan


def _resource_curve(task: Task, events: list[Event], keys: list[tuple[float, ...]]) -> list[tuple[int, float]]:
    curve: list[tuple[int, float]] = []
    used, best = 0, -1
    for i, event in enumerate(events):
        used += event.trained
        if best < 0 or keys[i] < keys[best]:
            best = i
        curve.append((used, _score(task, events[best].metrics)))
    return curve


def _step_curve(task: Task, events: list[Event], keys: list[tuple[float, ...]]) -> list[tuple[int, float]]:
    curve: list[tuple[int, float]] = []
    best = -1
    for i in sorted(range(len(events)), key=lambda i: events[i].step):
        if best < 0 or keys[i] < keys[best]:
            best = i
        if curve and curve[-1][0] == events[i].step:
            curve.pop()
        curve.append((events[i].step, _score(task, events[best].metrics)))
    return curve
