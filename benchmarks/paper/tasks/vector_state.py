"""The state of the numpy tasks: a parameter vector θ and its global step, saved in the noisy
quadratic example's checkpoint format (an .npz archive with `theta` and `step`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from examples.noisy_quadratic.problem import save_theta


@dataclass(frozen=True, eq=False)
class VectorState:
    """θ (float64, NaN/inf once diverged; never mutated by the tasks) and the steps since init."""

    theta: np.ndarray
    step: int


def save_vector_state(state: VectorState, path: Path) -> None:
    """Write `state` atomically (the example's `save_theta`)."""
    save_theta(Path(path), state.theta, state.step)


def load_vector_state(path: Path) -> VectorState:
    """Read what `save_vector_state` wrote. Raises OSError or ValueError for a missing or bad file."""
    with np.load(Path(path)) as archive:
        return VectorState(np.asarray(archive["theta"], dtype=np.float64), int(archive["step"]))


def noise_generator(seed: int, step: int, stream: int = 0) -> np.random.Generator:
    """The generator of `train`'s noise, keyed by the trial's seed and the state's global step, so
    a lineage that keeps one seed still sees fresh noise in every interval. Seeds must be ≥ 0."""
    return np.random.default_rng([seed, step, stream])
