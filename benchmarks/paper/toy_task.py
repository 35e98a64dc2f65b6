"""A tiny task for the suite's own tests: a few milliseconds per run, so the runner, every method
adapter and the report can be checked end to end without the real tasks' cost.

A noisy quadratic in 4 dimensions trained by SGD (optionally with momentum, a conditional
parameter, so the adapters' handling of conditions is exercised). With `two_objectives` it has a
second loss around another centre, so the Pareto paths run too.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.paper.tasks.base import Budget
from worker_client import (
    Comparison,
    Condition,
    Goal,
    Objective,
    ParameterSpec,
    ParameterType,
    ParamValue,
    Scale,
)

_CURVATURES = np.array([1.0, 3.0, 10.0, 30.0])
_OTHER_CENTRE = np.array([1.0, -1.0, 0.5, 0.0])
_PARAMETERS = (
    ParameterSpec("learning_rate", ParameterType.FLOAT, low=1e-3, high=0.1, scale=Scale.LOG),
    ParameterSpec("optimizer", ParameterType.CATEGORICAL, values=("sgd", "momentum")),
    ParameterSpec("momentum", ParameterType.FLOAT, low=0.0, high=0.9,
                  condition=Condition("optimizer", ("momentum",))),
)


@dataclass(frozen=True)
class ToyState:
    x: np.ndarray
    velocity: np.ndarray
    step: int


@dataclass
class ToyTask:
    """See the module docstring; `toy_task(two_objectives=True)` builds the Pareto variant. Not
    frozen: `Task` declares its members as plain attributes, which a frozen field does not match."""

    name: str = "toy"
    parameters: tuple[ParameterSpec, ...] = _PARAMETERS
    objectives: tuple[Objective, ...] = (Objective("loss", Goal.MINIMIZE),)
    comparison: Comparison = Comparison.LEXICOGRAPHIC
    reference_point: tuple[float, ...] = (20.0, 20.0)

    @property
    def two_objectives(self) -> bool:
        return len(self.objectives) > 1

    def budget(self, quick: bool) -> Budget:
        return Budget(members=5, interval=5, intervals=4) if quick else Budget(members=5, interval=10, intervals=10)

    def init(self, hparams: Mapping[str, ParamValue], seed: int) -> ToyState:
        rng = np.random.default_rng(seed)
        return ToyState(rng.normal(0.0, 1.0, size=4), np.zeros(4), 0)

    def train(self, state: ToyState, hparams: Mapping[str, ParamValue], steps: int, seed: int) -> ToyState:
        rng = np.random.default_rng(seed)
        lr = float(hparams["learning_rate"])
        beta = float(hparams.get("momentum", 0.0)) if hparams.get("optimizer") == "momentum" else 0.0
        x, v = state.x.copy(), state.velocity.copy()
        with np.errstate(all="ignore"):
            for _ in range(steps):
                grad = _CURVATURES * x + rng.normal(0.0, 1.0, size=4) * np.sqrt(_CURVATURES)
                v = beta * v + grad
                x = x - lr * v
        return ToyState(x, v, state.step + steps)

    def step_of(self, state: ToyState) -> int:
        return state.step

    def evaluate(self, state: ToyState) -> dict[str, float]:
        with np.errstate(all="ignore"):
            loss = float(0.5 * np.sum(_CURVATURES * state.x**2))
            metrics = {"loss": loss if math.isfinite(loss) else math.nan, "test_loss": loss}
            if self.two_objectives:
                metrics["loss2"] = float(0.5 * np.sum((state.x - _OTHER_CENTRE) ** 2))
        return metrics

    def save(self, state: ToyState, path: Path) -> None:
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps({"x": state.x.tolist(), "v": state.velocity.tolist(), "step": state.step}))
        os.replace(temporary, path)

    def load(self, path: Path) -> ToyState:
        data: dict[str, Any] = json.loads(path.read_text())
        return ToyState(np.array(data["x"], dtype=float), np.array(data["v"], dtype=float), int(data["step"]))

    def score(self, metrics: Mapping[str, float]) -> float:
        return float(metrics.get("test_loss", metrics["loss"]))

    def limit(self, quick: bool) -> float | None:
        return None


def toy_task(two_objectives: bool = False) -> ToyTask:
    """The single-objective toy, or `toy_pareto` with a second loss around another centre."""
    if not two_objectives:
        return ToyTask()
    objectives = (Objective("loss", Goal.MINIMIZE), Objective("loss2", Goal.MINIMIZE))
    return ToyTask(name="toy_pareto", objectives=objectives, comparison=Comparison.PARETO)
