"""A cheap task with two conflicting objectives (Pareto comparison): SGD on a weighted sum of two
noisy quadratics with different centres and curvatures, the weight being a hyperparameter.

θ ∈ R^10; loss_a(θ) = ½ Σ aᵢ (θᵢ − 1)² / Σ a and loss_b(θ) = ½ Σ bᵢ (θᵢ + 1)² / Σ b, with
curvatures a log-spaced 1..10 and b the same reversed, normalized so that each loss is 2 at the
other's optimum. A trial minimizes w·loss_a + (1 − w)·loss_b (up to the normalization, curvatures
hᵢ = w aᵢ/Σa + (1 − w) bᵢ/Σb) by SGD with gradient noise N(0, noise_scale² hᵢ) per coordinate,
from θ₀ = 3·(−1)ⁱ (far from both centres: loss_a = loss_b = 5.38). Hyperparameters: the learning
rate, log-uniform in [1e-3, 30] (SGD diverges above 2/max h ≥ 8.2), and the weight w, uniform in
[0, 1]. Both losses are to be
minimized; no weight is best for both, so a method's result is the front of its trials, scored
by `pareto.hypervolume` up to `reference_point` = (2.2, 2.2). `score` is loss_a alone (for
tables that need one number); `ideal_front` is the front of the exact minimizers over w, whose
hypervolume (`ideal_hypervolume`, 4.53) bounds what any method can reach.

Full budget: 5 members × 30 intervals × 10 steps; quick: 5 × 6 × 10. Measured as CPU time of one
process (init + every interval's train + evaluate of all members) on the shared 2-core machine:
full 0.03 s, quick 0.007 s. At η = 0.1 and 11 fixed weights, 300 steps reach a hypervolume of
4.24 (94% of the ideal front's 4.53); η ≤ 0.01 does not reach the reference box in 300 steps and
η ≥ 1 is dominated by its noise floor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.paper.tasks.base import Budget
from benchmarks.paper.tasks.pareto import hypervolume
from benchmarks.paper.tasks.quadratic import quadratic_loss, sgd
from benchmarks.paper.tasks.vector_state import VectorState, load_vector_state, noise_generator, save_vector_state
from worker_client import Comparison, Goal, Objective, ParameterSpec, ParameterType, ParamValue, Scale

_PARAMETERS = (
    ParameterSpec("learning_rate", ParameterType.FLOAT, low=1e-3, high=30.0, scale=Scale.LOG),
    ParameterSpec("weight", ParameterType.FLOAT, low=0.0, high=1.0),
)


@dataclass(unsafe_hash=True)
class TwoObjectiveTask:
    """See the module docstring. Not frozen: `Task` declares its members as plain attributes,
    which a frozen dataclass's fields do not match; treat it as immutable (hashed by value)."""

    name: str = "two_objective"
    parameters: tuple[ParameterSpec, ...] = _PARAMETERS
    objectives: tuple[Objective, ...] = (Objective("loss_a", Goal.MINIMIZE), Objective("loss_b", Goal.MINIMIZE))
    comparison: Comparison = Comparison.PARETO
    reference_point: tuple[float, float] = (2.2, 2.2)
    dim: int = 10
    max_curvature: float = 10.0
    noise_scale: float = 1.0
    start: float = 3.0

    @property
    def curvatures_a(self) -> np.ndarray:
        """aᵢ / Σa: loss_a's curvatures, normalized."""
        a = np.logspace(0.0, np.log10(self.max_curvature), self.dim)
        return np.asarray(a / a.sum())

    @property
    def curvatures_b(self) -> np.ndarray:
        return self.curvatures_a[::-1].copy()

    def combined(self, weight: float) -> tuple[np.ndarray, np.ndarray]:
        """Curvatures and centre of w·loss_a + (1 − w)·loss_b."""
        a, b = self.curvatures_a, self.curvatures_b
        h = weight * a + (1.0 - weight) * b
        return h, (weight * a - (1.0 - weight) * b) / h

    def budget(self, quick: bool) -> Budget:
        return Budget(members=5, interval=10, intervals=6 if quick else 30)

    def init(self, hparams: Mapping[str, ParamValue], seed: int) -> VectorState:
        """θ₀ = 3·(−1)ⁱ (deterministic: the seed keys only the training noise)."""
        return VectorState(self.start * (-1.0) ** np.arange(self.dim), 0)

    def train(self, state: VectorState, hparams: Mapping[str, ParamValue], steps: int, seed: int) -> VectorState:
        h, centre = self.combined(float(hparams["weight"]))
        rng = noise_generator(seed, state.step)
        theta = sgd(state.theta, h, self.noise_scale * np.sqrt(h), float(hparams["learning_rate"]), steps, rng, centre)
        return VectorState(theta, state.step + steps)

    def step_of(self, state: VectorState) -> int:
        return state.step

    def evaluate(self, state: VectorState) -> dict[str, float]:
        """Both exact losses; inf or NaN once diverged."""
        return {
            "loss_a": quadratic_loss(state.theta, self.curvatures_a, 1.0),
            "loss_b": quadratic_loss(state.theta, self.curvatures_b, -1.0),
        }

    def save(self, state: VectorState, path: Path) -> None:
        save_vector_state(state, path)

    def load(self, path: Path) -> VectorState:
        return load_vector_state(path)

    def score(self, metrics: Mapping[str, float]) -> float:
        """loss_a; inf when it is not finite. The report scores fronts by `pareto.hypervolume`."""
        loss = float(metrics["loss_a"])
        return loss if math.isfinite(loss) else math.inf

    def limit(self, quick: bool) -> None:
        """None: no single score is the limit of a front; see `ideal_hypervolume`."""
        return None

    def ideal_front(self, points: int = 2001) -> list[tuple[float, float]]:
        """(loss_a, loss_b) of the exact minimizers of the weighted sum, for `points` weights."""
        front = []
        for weight in np.linspace(0.0, 1.0, points):
            _, centre = self.combined(float(weight))
            metrics = self.evaluate(VectorState(centre, 0))
            front.append((metrics["loss_a"], metrics["loss_b"]))
        return front

    def ideal_hypervolume(self, points: int = 2001) -> float:
        """The hypervolume of `ideal_front` up to `reference_point`. The minimizers of the weighted
        sums are the Pareto set of the two losses, so no set of points dominates more (up to the
        front's discretization)."""
        return hypervolume(self.ideal_front(points), self.reference_point)
