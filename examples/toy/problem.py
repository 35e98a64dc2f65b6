"""The toy problem of Jaderberg et al. 2017, §4.1, as a trainer and an evaluator.

θ ∈ R² starts at (0.9, 0.9). The true objective is Q(θ) = 1.2 − θ0² − θ1², maximal (1.2) at the
origin, but a member only sees the surrogate Q̂(θ|h) = 1.2 − h0·θ0² − h1·θ1² and climbs it by
gradient ascent with step size 0.01. A member with h = (1, 0) or (0, 1) can only shrink one
coordinate; PBT, by copying θ from the better members and exploring h, finds the optimum fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from worker_client import (
    AlgorithmConfig,
    Goal,
    Objective,
    ParameterSpec,
    ParameterType,
    StudyConfig,
)
from worker_client.atomic import write_bytes_atomically
from worker_client.context import TrialContext, step_of_checkpoint

INITIAL_THETA = (0.9, 0.9)
STEP_SIZE = 0.01
DEFAULT_STEPS = 4
"""Steps per trial when the study gives no hint; the paper exploits every 4 steps."""


def study_config(
    population_size: int = 10, max_generations: int = 20, steps_per_trial: int = DEFAULT_STEPS, seed: int = 0
) -> StudyConfig:
    """h0, h1 uniform in [0, 1]; maximize the true objective "Q"."""
    return StudyConfig(
        parameters=(
            ParameterSpec("h0", ParameterType.FLOAT, low=0.0, high=1.0),
            ParameterSpec("h1", ParameterType.FLOAT, low=0.0, high=1.0),
        ),
        objectives=(Objective("Q", Goal.MAXIMIZE),),
        algorithm=AlgorithmConfig(
            population_size=population_size,
            max_generations=max_generations,
            steps_per_trial=steps_per_trial,
            seed=seed,
        ),
    )


def true_objective(theta: np.ndarray) -> float:
    """Q(θ) = 1.2 − θ0² − θ1²."""
    return float(1.2 - np.sum(theta**2))


def save_theta(path: Path, theta: np.ndarray, step: int) -> None:
    """A checkpoint is a small JSON file: {"theta": [θ0, θ1], "step": step}."""
    write_bytes_atomically(path, json.dumps({"theta": theta.tolist(), "step": step}).encode())


def load_theta(path: str | Path) -> np.ndarray:
    return np.asarray(json.loads(Path(path).read_text())["theta"], dtype=np.float64)


def train(ctx: TrialContext) -> None:
    """Gradient ascent on Q̂(θ|h) from the parent's θ (or the initial one) for `ctx.steps` steps."""
    step = step_of_checkpoint(ctx.warm_start_checkpoint_path)
    if ctx.warm_start_checkpoint_path:
        theta = load_theta(ctx.warm_start_checkpoint_path)
    else:
        theta = np.array(INITIAL_THETA, dtype=np.float64)
    h = np.array([float(ctx.hparams["h0"]), float(ctx.hparams["h1"])])
    for _ in range(ctx.steps or DEFAULT_STEPS):
        theta = theta + STEP_SIZE * (-2.0 * h * theta)
        step += 1
        if ctx.should_stop():
            break
    save_theta(ctx.checkpoint_path(step), theta, step)


def evaluate(ctx: TrialContext, checkpoint: Path) -> dict[str, float]:
    """The true objective Q of the checkpoint's θ (not the surrogate the member trained on)."""
    return {"Q": true_objective(load_theta(checkpoint))}
