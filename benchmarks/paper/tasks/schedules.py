"""The best learning-rate schedules of a task whose expected final loss is known exactly (the
noisy quadratics): the best of each usual family, found on grids, and the best free schedule.

Schedules are piecewise constant on the budget's intervals, one rate per interval, because that is
what a lineage can follow (PBT changes hyperparameters only between intervals), so the best of
them is a limit a method could reach. Families, with t the interval index from 0:

- constant       η₀
- exponential    η₀ γᵗ
- step           η₀ γ^⌊t/m⌋ (γ every m intervals)
- inverse_time   η₀ / (1 + t/τ)
- hold_exponential  η₀ for t < h, then η₀ γ^(t−h+1)
- free           any rates, optimized by L-BFGS-B on their logarithms from the best family

`expected` maps a batch of schedules, shape (n, intervals), to their expected final losses (n,).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Expected = Callable[[np.ndarray], np.ndarray]
STABLE_FRACTION = 0.95
"""Limits search rates up to this fraction of the stability bound 2/max c: at the bound itself the
fastest direction stops contracting and its noise piles up (harmless in expectation if the rate
drops later, but a run that looks diverged until then), so a limit found there would be an artifact."""
_CHUNK = 4096
_DECAYS = 1.0 - np.logspace(-3.0, np.log10(0.6), 24)
"""γ from 0.999 down to 0.4 per interval."""


@dataclass(frozen=True)
class Schedule:
    """One schedule: its family, the family's parameters, its rate per interval and the expected
    final loss it reaches."""

    family: str
    parameters: dict[str, float]
    rates: tuple[float, ...]
    expected_loss: float


def _evaluate(expected: Expected, rates: np.ndarray) -> np.ndarray:
    losses = np.concatenate([expected(rates[i : i + _CHUNK]) for i in range(0, len(rates), _CHUNK)])
    return np.where(np.isfinite(losses), losses, np.inf)


def _best(
    expected: Expected, family: str, rates: np.ndarray, parameters: np.ndarray, names: tuple[str, ...]
) -> Schedule:
    losses = _evaluate(expected, rates)
    i = int(np.argmin(losses))
    return Schedule(
        family=family,
        parameters={name: float(value) for name, value in zip(names, parameters[i], strict=True)},
        rates=tuple(float(r) for r in rates[i]),
        expected_loss=float(losses[i]),
    )


def best_constant(expected: Expected, intervals: int, low: float, high: float, points: int = 801) -> Schedule:
    """The best constant rate on a log grid of `points` rates in [low, high]."""
    grid = np.logspace(np.log10(low), np.log10(high), points)
    return _best(expected, "constant", np.repeat(grid[:, None], intervals, axis=1), grid[:, None], ("lr0",))


Grid = tuple[np.ndarray, np.ndarray, tuple[str, ...]]
"""A family's grid: rates (n, intervals), parameters (n, p), parameter names."""


def family_schedules(intervals: int, low: float, high: float, points: int = 31) -> dict[str, Grid]:
    """Each decaying family's grid: (rates (n, intervals), parameters (n, p), parameter names)."""
    t = np.arange(intervals, dtype=np.float64)
    lr0 = np.logspace(np.log10(low), np.log10(high), points)
    coarse = lr0[::2]
    families: dict[str, Grid] = {}

    params = np.array([(a, g) for a in lr0 for g in _DECAYS])
    families["exponential"] = (params[:, :1] * params[:, 1:] ** t, params, ("lr0", "gamma"))

    params = np.array([(a, g, m) for a in coarse for g in (0.5, 0.3, 0.2, 0.1) for m in range(1, intervals)])
    rates = params[:, :1] * params[:, 1:2] ** np.floor(t / params[:, 2:])
    families["step"] = (rates, params, ("lr0", "gamma", "every"))

    taus = np.logspace(-1.0, np.log10(10.0 * intervals), 24)
    params = np.array([(a, tau) for a in lr0 for tau in taus])
    families["inverse_time"] = (params[:, :1] / (1.0 + t / params[:, 1:]), params, ("lr0", "tau"))

    params = np.array([(a, h, g) for a in coarse for h in range(1, intervals) for g in _DECAYS[::3]])
    exponent = np.maximum(t - params[:, 1:2] + 1.0, 0.0)
    families["hold_exponential"] = (params[:, :1] * params[:, 2:] ** exponent, params, ("lr0", "hold", "gamma"))
    return families


def best_free(expected: Expected, start: np.ndarray, low: float, high: float, max_iterations: int = 400) -> Schedule:
    """The schedule with the lowest expected loss, one rate per interval in [low, high], found by
    L-BFGS-B on the log rates from `start` (central-difference gradients, all in one batch).
    Imports scipy (a dependency of scikit-learn, which the examples install)."""
    from scipy.optimize import minimize

    n = len(start)
    step = 1e-5

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        probes = np.vstack([x, x + step * np.eye(n), x - step * np.eye(n)])
        values = np.log(_evaluate(expected, np.exp(probes)))
        if not np.isfinite(values[0]):
            return 1e300, np.zeros(n)
        gradient = (values[1 : n + 1] - values[n + 1 :]) / (2.0 * step)
        return float(values[0]), np.where(np.isfinite(gradient), gradient, 0.0)

    bounds = [(float(np.log(low)), float(np.log(high)))] * n
    x0 = np.clip(np.log(np.asarray(start, dtype=np.float64)), np.log(low), np.log(high))
    result = minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": max_iterations})
    rates = np.exp(np.clip(result.x, np.log(low), np.log(high)))
    loss = float(_evaluate(expected, rates[None])[0])
    return Schedule("free", {}, tuple(float(r) for r in rates), loss)


def search(expected: Expected, intervals: int, low: float, high: float) -> dict[str, Schedule]:
    """The best schedule of every family (see the module docstring), keyed by family; "free" is
    started from the best family and is never worse than it."""
    found = {"constant": best_constant(expected, intervals, low, high)}
    for family, (rates, params, names) in family_schedules(intervals, low, high).items():
        found[family] = _best(expected, family, rates, params, names)
    start = min(found.values(), key=lambda s: s.expected_loss)
    free = best_free(expected, np.asarray(start.rates), low, high)
    if free.expected_loss > start.expected_loss:
        free = Schedule("free", {}, start.rates, start.expected_loss)
    found["free"] = free
    return found
