"""A hard task for greedy selection: an ill-conditioned noisy quadratic with a long horizon, on
which choosing the learning rate by the loss one interval ahead decays it far too early.

Design. Plain SGD on L(θ) = ½ Σ cᵢθᵢ² in 50 dimensions, curvatures log-spaced from 1e-3 to 1,
gradient noise N(0, cᵢ) (as in the noisy quadratic), θ₀ᵢ = cᵢ^(-3/4) so each coordinate starts
with loss ½ cᵢ^(-1/2): the slowest decade of curvatures (c < 0.01) carries 72% of the initial
loss of 225. The learning rate is log-uniform in [1e-4, 4]; above 2/max c = 2 the fastest
direction diverges. Full budget: 5 members × 40 intervals × 100 steps (4,000 SGD steps a member).

Why greedy fails. At a rate η the fast directions settle within a few steps at a noise floor of
about η Σσᵢ²/4 (more near the stability edge), while a slow direction shrinks by (1 − ηcᵢ)² a
step and needs thousands of steps at η near 2. Over one interval (100 steps) a lower η lowers the
floor at once and costs the slow directions only a little progress, so the lower rate wins every
short-horizon comparison; but the floor comes back down whenever the rate is lowered later, while
slow progress not made is never made up. The best schedules hold η at the stability edge for half
the run and decay only then. Exact expected final losses at the full budget (`expected_loss`;
`schedules`, one rate per interval in [1e-4, 1.9], 1.9 = 95% of the stability bound):

    best constant rate           η = 0.568                         1.58
    best exponential             η₀ = 1.9, γ = 0.935 per interval   0.385   (4.1× below)
    best step decay              1.9, ×0.1 every 17 intervals       0.070   (23× below)
    best inverse time            1.9 / (1 + t/7.6)                  0.75
    best hold, then exponential  1.9 for 22 intervals, γ = 0.66     0.0295
    best free schedule (limit)   1.9 for 21 intervals, then ↓       0.0280  (57× below)
    myopic: each interval, the rate best at the interval's end      5.78    (3.7× above)

The myopic schedule, the limit of greedy exploitation, starts at 1.77 but decays at once (0.91
after 4 intervals, 0.26 after 8, 0.019 at the end) and ends 3.7× worse than simply keeping the
best constant rate. A simplified PBT simulated on this task (5 members from log-uniform rates,
binary tournament on the last interval's loss, the winner's state and rate ×0.8 or ×1.2, 20
seeds) ends at a median best loss of 0.91: better than the best constant but 32× above the
limit, while on `noisy_quadratic` the same simulation ends 3.1× above its limit (0.170 vs 0.0544).
The quick budget (5 × 8 × 25 steps) is a smoke test: too short for the slow directions, its
best free schedule is only 1.2× below the best constant rate (38.3 vs 46.0).

Cost, measured as CPU time of one process (init + every interval's train + evaluate of all
members) on the shared 2-core machine: full 0.27 s, quick 0.012 s; `schedules(False)`, which
`limit` uses, about 1.7 s once per process (cached).
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
        per-interval schedule, never worse than the best of any family (`schedules`). An
        expectation: one run's final loss scatters around it."""
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
