"""Noisy quadratics: SGD on L(θ) = ½ Σ cᵢ (θᵢ − μᵢ)² whose gradient carries independent Gaussian
noise of standard deviation σᵢ, and the exact expected loss of any learning-rate schedule.

Each coordinate is a linear recursion, δ ← (1 − η c) δ − η σ ε with δ = θ − μ, so its second
moment obeys s ← (1 − η c)² s + η² σ² exactly (the noise is independent of δ). Over k steps at
one rate this sums in closed form, s_k = a^k s + η² σ² (1 − a^k) / (1 − a) with a = (1 − η c)²,
so a schedule that is constant on each of its segments costs O(segments × dim), whatever the
number of steps. The expected loss is ½ Σ cᵢ sᵢ.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike


def sgd(
    theta: np.ndarray,
    curvatures: np.ndarray,
    noise_std: np.ndarray,
    learning_rate: float,
    steps: int,
    rng: np.random.Generator,
    centre: np.ndarray | float = 0.0,
) -> np.ndarray:
    """`steps` noisy SGD steps θ ← θ − η (c (θ − μ) + σ ε), ε ~ N(0, 1) per coordinate; a new
    array. Stops early once θ is no longer finite (it would stay so)."""
    theta = np.array(theta, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            theta -= learning_rate * (curvatures * (theta - centre) + noise_std * rng.standard_normal(theta.shape))
            if not np.all(np.isfinite(theta)):
                break
    return theta


def quadratic_loss(theta: np.ndarray, curvatures: np.ndarray, centre: np.ndarray | float = 0.0) -> float:
    """½ Σ cᵢ (θᵢ − μᵢ)²; inf or NaN once SGD diverged."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(0.5 * np.sum(curvatures * (theta - centre) ** 2))


def second_moments(
    start: np.ndarray,
    curvatures: np.ndarray,
    noise_var: np.ndarray,
    rates: ArrayLike,
    steps: int | Sequence[int] = 1,
) -> np.ndarray:
    """E[(θ − μ)²] per coordinate after SGD from second moments `start` (for a deterministic
    start, (θ₀ − μ)²) with the piecewise-constant schedule `rates`: its last axis lists the
    segments' rates, each segment `steps` long (one number for all, or one per segment); leading
    axes are a batch of schedules. Returns shape rates.shape[:-1] + (dim,); inf where a schedule
    diverges. Raises ValueError when `steps` does not match the segments."""
    rates = np.asarray(rates, dtype=np.float64)
    if rates.ndim == 0:
        rates = rates[None]
    lengths = np.broadcast_to(np.asarray(steps, dtype=np.float64), rates.shape[-1:])
    if np.any(lengths < 0):
        raise ValueError(f"steps must not be negative, got {steps!r}")
    s = np.broadcast_to(np.asarray(start, dtype=np.float64), rates.shape[:-1] + (len(curvatures),)).copy()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for j in range(rates.shape[-1]):
            k = lengths[j]
            if k == 0:
                continue
            rate = rates[..., j, None]
            log_r = np.log(np.abs(1.0 - rate * curvatures))
            decay = np.exp(2.0 * k * log_r)
            denominator = np.expm1(2.0 * log_r)
            geometric = np.where(denominator != 0.0, np.expm1(2.0 * k * log_r) / denominator, k)
            s = decay * s + rate**2 * noise_var * geometric
    return np.where(np.isnan(s), np.inf, s)


def expected_loss(
    start: np.ndarray,
    curvatures: np.ndarray,
    noise_var: np.ndarray,
    rates: ArrayLike,
    steps: int | Sequence[int] = 1,
) -> np.ndarray:
    """½ Σ cᵢ E[(θᵢ − μᵢ)²] after the schedule (see `second_moments`); shape rates.shape[:-1], inf
    where a schedule diverges."""
    moments = second_moments(start, curvatures, noise_var, rates, steps)
    with np.errstate(over="ignore", invalid="ignore"):
        loss = 0.5 * np.sum(curvatures * moments, axis=-1)
    return np.where(np.isfinite(loss), loss, np.inf)
