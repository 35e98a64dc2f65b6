"""The two baselines of section 4.2 that need no package: a grid over the learning rate and random
search. Both train `budget.members` trials of `budget.steps_per_member` steps from scratch, which is
exactly the budget's total.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from benchmarks.paper.adapters import active_hparams, derived_seed, learning_rate_spec, midpoint, train_static
from benchmarks.paper.records import EventLog, MethodOutcome
from benchmarks.paper.tasks.base import Budget, Task
from pbt_service.core.search_space import sample_hparams
from worker_client import ParamValue, Scale


def grid_values(low: float, high: float, count: int, log: bool) -> list[float]:
    """`count` values spanning [low, high], log-spaced for a LOG parameter."""
    if count == 1:
        return [math.sqrt(low * high) if log else (low + high) / 2]
    if log:
        return [float(v) for v in np.logspace(math.log10(low), math.log10(high), count)]
    return [float(v) for v in np.linspace(low, high, count)]


def run_grid(task: Task, budget: Budget, seed: int, workdir: Path) -> MethodOutcome:
    """`budget.members` learning rates spanning the task's range; other parameters at midpoints."""
    spec = learning_rate_spec(task.parameters)
    base: dict[str, ParamValue] = {p.name: midpoint(p) for p in task.parameters}
    log = EventLog()
    values = grid_values(spec.low, spec.high, budget.members, spec.scale is Scale.LOG)
    for i, value in enumerate(values):
        train_static(task, {**base, spec.name: value}, budget, seed, f"grid-{i}", log)
    active = active_hparams(task.parameters, base)
    others = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in active.items()
                       if k != spec.name)
    note = f"{len(values)} values of {spec.name} in [{spec.low:g}, {spec.high:g}]; {others or 'no other parameter'}"
    return MethodOutcome(log.events(), log.trained, len(values), note)


def run_random(task: Task, budget: Budget, seed: int, workdir: Path) -> MethodOutcome:
    """`budget.members` samples from the prior (log-uniform for LOG parameters)."""
    rng = np.random.default_rng(derived_seed(seed, "random"))
    log = EventLog()
    for i in range(budget.members):
        train_static(task, sample_hparams(task.parameters, rng), budget, seed, f"random-{i}", log)
    return MethodOutcome(log.events(), log.trained, budget.members)
