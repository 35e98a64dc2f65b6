"""What a benchmark task is, so every method (our PBT through the service, grid, random, Optuna,
Ray Tune) trains the same model with the same code and is charged the same resource.

A task is a training state machine: `init` a state from hyperparameters and a seed, `train` it
some steps with (possibly new) hyperparameters, `evaluate` it, `save`/`load` it to a file. The
adapters (the worker's trainer/evaluator, an Optuna objective with intermediate reports, a Ray
Tune function trainable with checkpoints) are written once, in `benchmarks/paper/adapters.py`,
on top of this interface; tasks know nothing about methods.

Resource is counted in training steps: a method that trains N steps in all, over all its trials,
has used N. Every method of a task gets `budget.total_steps`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from worker_client import Comparison, Objective, ParameterSpec, ParamValue


@dataclass(frozen=True)
class Budget:
    """The resource of one run of one method on a task.

    `members` × `interval` × `intervals` = `total_steps`: PBT runs `members` lineages of
    `intervals` intervals of `interval` steps (PBT 5×5 is members=5); a static method trains
    `members` trials of `interval × intervals` steps each (or, for multi-fidelity methods, any mix
    whose sum is `total_steps`).
    """

    members: int
    interval: int
    intervals: int

    @property
    def steps_per_member(self) -> int:
        return self.interval * self.intervals

    @property
    def total_steps(self) -> int:
        return self.members * self.steps_per_member


class Task(Protocol):
    """One benchmark problem. Implementations are small frozen dataclasses, picklable (Ray ships
    them to its workers), deterministic given the seeds they are handed."""

    name: str
    """Short id used in tables, file names and `--tasks`."""

    parameters: tuple[ParameterSpec, ...]
    """The search space every method searches (the same bounds and scales for all)."""

    objectives: tuple[Objective, ...]
    """The fitness tuple; the first objective is the table's score for single-objective tasks."""

    comparison: Comparison
    """LEXICOGRAPHIC, or PARETO for the multi-objective task."""

    def budget(self, quick: bool) -> Budget:
        """The resource per run: the full suite's, or the `--quick` smoke test's (seconds)."""
        ...

    def init(self, hparams: Mapping[str, ParamValue], seed: int) -> Any:
        """A fresh state (model, optimizer state, step counter 0) for a trial seeded by `seed`."""
        ...

    def train(self, state: Any, hparams: Mapping[str, ParamValue], steps: int, seed: int) -> Any:
        """`steps` more training steps with `hparams` (a warm-started state keeps its weights and
        optimizer moments; the new hyperparameters apply from now). `seed` keys the noise of
        these steps. Returns the new state (may mutate and return the same object)."""
        ...

    def step_of(self, state: Any) -> int:
        """Training steps the state has had since `init` (its global step)."""
        ...

    def evaluate(self, state: Any) -> dict[str, float]:
        """Validation metrics for selection (every objective's metric, NaN/inf when diverged),
        plus `test_<metric>` entries when the task has a held-out set to report."""
        ...

    def save(self, state: Any, path: Path) -> None:
        """Write the state to `path` atomically (the file may be read by another process)."""
        ...

    def load(self, path: Path) -> Any:
        """Read what `save` wrote."""
        ...

    def score(self, metrics: Mapping[str, float]) -> float:
        """One number for the table, lower is better (e.g. loss, 1 - accuracy, or for PARETO tasks
        minus the hypervolume of the front the method found is computed by the report, and this
        returns the first objective oriented to minimize)."""
        ...

    def limit(self, quick: bool) -> float | None:
        """The best score reachable at this budget when the task knows it (for the hard task: the
        best decaying schedule), else None."""
        ...
