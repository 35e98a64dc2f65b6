"""A hard task for greedy selection: an ill-conditioned noisy quadratic with a long horizon, on
which choosing the learning rate by the loss one interval ahead decays it far too early.

Design. Plain SGD on L(θ) = ½ Σ cᵢθᵢ² in 50 dimensions, curvatures log-spaced from 1e-3 to 1,
gradient noise N(0, cᵢ) (as in the noisy quadratic), θ₀ᵢ = cᵢ^(-3/4) so each coordinate starts
with loss ½ cᵢ^(-1/2): the slowest decade of curvatures (c < 0.01) carries 69% of the initial
loss of 225. The learning rate is log-uniform in [1e-4, 4]; above 2/max c = 2 the fastest
direction diverges. Full budget: 5 members × 40 intervals × 100 steps (4,000 SGD steps a member).

Why greedy fails. At a rate η the fast directions settle within a few steps at a noise floor of
about η Σσᵢ²/4, while a slow direction shrinks by (1 − ηcᵢ)² a step and needs thousands of steps
at η near 2. Over one interval (100 steps) lowering η lowers the floor at once and costs the slow
directions only a little progress, so the lower rate wins every short-horizon comparison; but the
floor comes back down whenever the rate is lowered later, while slow progress not made is never
made up. The best schedules therefore hold η at the stability edge for most of the run and decay
only at the end. Exact expected final losses at the full budget (`expected_loss`, computed with
`schedules.search`, rates in [1e-4, 2]):

    best constant rate          η = 0.567                    1.58
    best exponential            η₀ = 2, γ = 0.93/interval     0.38
    best hold then exponential  η₀ = 2 for 20 intervals       0.028
    best free schedule (limit)  2 for 21 intervals, then ↓    0.027   (58× below the best constant)
    myopic (best rate for the next interval, each interval)   5.8     (3.7× above the best constant)

The myopic schedule, the limit of greedy exploitation, drops η to 0.09 within 4 intervals and ends
3.7× worse than simply keeping the best constant rate; PBT, which selects on the last interval's
(noisy) loss, is pulled the same way.

Cost, measured on one core (init + every interval's train + evaluate of all members, 5 members):
full 0.22 s, quick 0.013 s; `schedules(False)` (the limit) about 1.5 s once per process (cached).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.paper.tasks.base import Budget
from benchmarks.paper.tasks.quadratic import expected_loss, quadratic_loss, second_moments, sgd
from benchmarks.paper.tasks.schedules import STABLE_FRACTION, Schedule, search
from benchmarks.paper.tasks.vector_state import VectorState, load_vector_state, noise_generator, save_vector_state
from worker_client import Comparison, Goal, Objective, ParameterSpec, ParameterType, ParamValue, Scale

_PARAMETERS = (ParameterSpec("learning_rate", ParameterType.FLOAT, low=1e-4, high=4.0, scale=Scale.LOG),)


@dataclass(unsafe_hash=True)
class HardQuadraticTask:
    """See the module docstring. Not frozen: `Task` declares its members as plain attributes,
    which a frozen dataclass's fields do not match; treat it as immutable (hashed by value)."""

    name: str = "hard_quadratic"
    parameters: tuple[ParameterSpec, ...] = _PARAMETERS
    objectives: tuple[Objective, ...] = (Objective("loss", Goal.MINIMIZE),)
    comparison: Comparison = Comparison.LEXICOGRAPHIC
    dim: int = 50
    min_curvature: float = 1e-3
    max_curvature: float = 1.0
    start_power: float = 0.75
    """θ₀ᵢ = cᵢ^(-start_power)."""
    noise_scale: float = 1.0
    """σᵢ = noise_scale · √cᵢ."""

    @property
    def curvatures(self) -> np.ndarray:
        return np.logspace(np.log10(self.min_curvature), np.log10(self.max_curvature), self.dim)

    @property
    def noise_std(self) -> np.ndarray:
        return np.asarray(self.noise_scale * np.sqrt(self.curvatures))

    @property
    def theta0(self) -> np.ndarray:
        theta0: np.ndarray = self.curvatures ** (-self.start_power)
        return theta0

    def budget(self, quick: bool) -> Budget:
        return Budget(members=5, interval=25, intervals=8) if quick else Budget(members=5, interval=100, intervals=40)

    def init(self, hparams: Mapping[str, ParamValue], seed: int) -> VectorState:
        """θ₀ (deterministic: the seed keys only the training noise)."""
        return VectorState(self.theta0, 0)

    def train(self, state: VectorState, hparams: Mapping[str, ParamValue], steps: int, seed: int) -> VectorState:
        rng = noise_generator(seed, state.step)
        theta = sgd(state.theta, self.curvatures, self.noise_std, float(hparams["learning_rate"]), steps, rng)
        return VectorState(theta, state.step + steps)

    def step_of(self, state: VectorState) -> int:
        return state.step

    def evaluate(self, state: VectorState) -> dict[str, float]:
        """The exact (noise-free) loss; inf or NaN once diverged."""
        return {"loss": quadratic_loss(state.theta, self.curvatures)}

    def save(self, state: VectorState, path: Path) -> None:
        save_vector_state(state, path)

    def load(self, path: Path) -> VectorState:
        return load_vector_state(path)

    def score(self, metrics: Mapping[str, float]) -> float:
        """The loss; inf when it is not finite."""
        loss = float(metrics["loss"])
        return loss if math.isfinite(loss) else math.inf

    def limit(self, quick: bool) -> float:
        """The best decaying schedule's expected final loss at this budget: the best free
        per-interval schedule, never worse than the best of any family (`schedules`)."""
        return self.schedules(quick)["free"].expected_loss

    def expected_loss(self, rates: np.ndarray | list[float], steps: int = 1) -> np.ndarray:
        """The exact expected loss after SGD from θ₀ with the schedule `rates` (one rate per
        segment of `steps` steps: per step by default; a leading batch axis is allowed)."""
        c = self.curvatures
        return expected_loss(self.theta0**2, c, self.noise_scale**2 * c, rates, steps)

    def schedules(self, quick: bool) -> dict[str, Schedule]:
        """The best schedule of each family at this budget, one rate per interval, within the
        search space and the stability bound 2/max c; cached per process."""
        budget = self.budget(quick)
        return _search(self, budget.interval, budget.intervals, self.parameters[0].low, self._stable_high())

    def best_constant(self, quick: bool = False) -> Schedule:
        """The best constant rate and its expected final loss at this budget."""
        return self.schedules(quick)["constant"]

    def myopic(self, quick: bool = False, points: int = 401) -> Schedule:
        """Greedy selection's idealization: before every interval, the rate (log grid of `points`
        in the stable range) whose expected loss at the end of that interval is lowest."""
        budget = self.budget(quick)
        grid = np.logspace(np.log10(self.parameters[0].low), np.log10(self._stable_high()), points)
        c = self.curvatures
        moments = self.theta0**2
        rates: list[float] = []
        for _ in range(budget.intervals):
            candidates = expected_loss(moments, c, self.noise_scale**2 * c, grid[:, None], budget.interval)
            best = float(grid[int(np.argmin(candidates))])
            rates.append(best)
            moments = second_moments(moments, c, self.noise_scale**2 * c, [best], budget.interval)
        loss = float(self.expected_loss(np.array(rates), budget.interval))
        return Schedule("myopic", {}, tuple(rates), loss)

    def _stable_high(self) -> float:
        return min(self.parameters[0].high, STABLE_FRACTION * 2.0 / self.max_curvature)


@functools.lru_cache(maxsize=16)
def _search(
    task: HardQuadraticTask, interval: int, intervals: int, low: float, high: float
) -> dict[str, Schedule]:
    return search(lambda rates: task.expected_loss(rates, interval), intervals, low, high)
