"""A noisy quadratic: the classic testbed for learning-rate schedules (Schaul et al. 2013,
Zhang et al. 2019). SGD with a constant learning rate stalls at a noise floor proportional to the
rate, so a schedule that decays it, which PBT discovers, beats every constant rate.

θ ∈ R^20 starts at all ones; loss(θ) = ½ Σ cᵢθᵢ² with curvatures cᵢ log-spaced from 1 to 100; each
SGD step sees the gradient cᵢθᵢ + εᵢ with εᵢ ~ N(0, cᵢ). Rates above 2/max(c) = 0.02 diverge.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worker_client import (
    AlgorithmConfig,
    Goal,
    Objective,
    ParameterSpec,
    ParameterType,
    Scale,
    StudyConfig,
)
from worker_client.atomic import write_bytes_atomically
from worker_client.context import TrialContext, step_of_checkpoint

STEPS_PER_TRIAL = 10


def study_config(
    population_size: int = 10,
    max_generations: int = 40,
    steps_per_trial: int = STEPS_PER_TRIAL,
    seed: int = 0,
) -> StudyConfig:
    """learning_rate log-uniform in [1e-4, 1]; minimize "loss"."""
    return StudyConfig(
        parameters=(ParameterSpec("learning_rate", ParameterType.FLOAT, low=1e-4, high=1.0, scale=Scale.LOG),),
        objectives=(Objective("loss", Goal.MINIMIZE),),
        algorithm=AlgorithmConfig(
            population_size=population_size,
            max_generations=max_generations,
            steps_per_trial=steps_per_trial,
            seed=seed,
        ),
    )


def save_theta(path: Path, theta: np.ndarray, step: int) -> None:
    """A checkpoint is an .npz archive with θ (float64, exact, NaN allowed) and the step."""
    buffer = io.BytesIO()
    np.savez(buffer, theta=theta, step=np.int64(step))
    write_bytes_atomically(path, buffer.getvalue())


def load_theta(path: str | Path) -> np.ndarray:
    with np.load(path) as archive:
        return np.asarray(archive["theta"], dtype=np.float64)


@dataclass(frozen=True)
class NoisyQuadratic:
    """The problem with its noise seed. `train` and `evaluate` are a worker's trainer and evaluator.

    The gradient noise of a trial is drawn from a generator keyed by (seed, trial id, first step),
    never by the hyperparameters, so a rerun of the same trials sees the same noise.
    """

    dim: int = 20
    max_curvature: float = 100.0
    seed: int = 0

    @property
    def curvatures(self) -> np.ndarray:
        return np.logspace(0.0, np.log10(self.max_curvature), self.dim)

    def loss(self, theta: np.ndarray) -> float:
        """½ Σ cᵢθᵢ²; inf or NaN once SGD diverged."""
        with np.errstate(over="ignore", invalid="ignore"):
            return float(0.5 * np.sum(self.curvatures * theta**2))

    def sgd(self, theta: np.ndarray, learning_rate: float, steps: int, rng: np.random.Generator) -> np.ndarray:
        """`steps` noisy SGD steps; stops early once θ is no longer finite (it stays so)."""
        c = self.curvatures
        noise_std = np.sqrt(c)
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(steps):
                theta = theta - learning_rate * (c * theta + noise_std * rng.standard_normal(self.dim))
                if not np.all(np.isfinite(theta)):
                    break
        return theta

    def train(self, ctx: TrialContext) -> None:
        step = step_of_checkpoint(ctx.warm_start_checkpoint_path)
        if ctx.warm_start_checkpoint_path:
            theta = load_theta(ctx.warm_start_checkpoint_path)
        else:
            theta = np.ones(self.dim)
        steps = ctx.steps or STEPS_PER_TRIAL
        rng = np.random.default_rng([self.seed, ctx.trial_id, step])
        theta = self.sgd(theta, float(ctx.hparams["learning_rate"]), steps, rng)
        save_theta(ctx.checkpoint_path(step + steps), theta, step + steps)

    def evaluate(self, ctx: TrialContext, checkpoint: Path) -> dict[str, float]:
        """The exact (noise-free) loss; a diverged run reports inf or NaN as its real outcome."""
        return {"loss": self.loss(load_theta(checkpoint))}


DEFAULT = NoisyQuadratic()


def train(ctx: TrialContext) -> None:
    """The trainer for the default problem (seed 0); use `NoisyQuadratic(seed=...).train` for others."""
    DEFAULT.train(ctx)


def evaluate(ctx: TrialContext, checkpoint: Path) -> dict[str, float]:
    """The evaluator for the default problem."""
    return DEFAULT.evaluate(ctx, checkpoint)
