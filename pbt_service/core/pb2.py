"""PB2's explore step (Parker-Holder et al., NeurIPS 2020): a Gaussian process bandit that picks
a child's continuous hyperparameters.

The GP models the improvement a member made over its last interval as a function of (time,
hyperparameters); a squared-exponential kernel over time as well as the hyperparameters lets old
observations count less as training moves on (the paper's time-varying kernel, as an ARD length
scale on time). The child gets the point of highest upper confidence bound at the current time.
scikit-learn's `GaussianProcessRegressor` does the regression; the points it sees are capped by
the caller and its length scale is picked from `LENGTH_SCALES` by marginal likelihood, so a
suggestion stays cheap (`benchmarks/pb2_latency.py` measures it against perturb), and with one
BLAS thread (on two busy cores, BLAS's own threads made a fit four times slower). scikit-learn is
imported on first use, so the pure core imports only numpy; the server runs `warm_up()` in a
thread when it starts, so the import (seconds) neither delays start-up nor, normally, happens
inside a suggestion under the study lock.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pbt_service import limits

LENGTH_SCALES = (0.1, 0.3, 1.0)
"""Length scales tried for the hyperparameters (in the unit cube); the one of highest marginal
likelihood is kept. Time has length scale 1 (the whole window) and the noise is a third of the
targets' prior variance. A full optimisation of the kernel (L-BFGS with restarts) costs 50-150 ms a
suggestion on these machines; three fixed fits cost about 4 ms (benchmarks/pb2_latency.py)."""

RANK_VARIANCE = 1.0 / 3.0
"""Variance of centred ranks spread evenly over [-1, 1]: the GP's prior variance, so that where
there is no data the bound is no higher than what the data already shows (a prior of variance 1
made every unexplored corner of the box look best, and PB2 jumped there)."""

UCB_KAPPA = 1.0
"""Exploration weight of the upper confidence bound (mean + kappa * std)."""

CANDIDATES = 256
"""Random candidates scored by the acquisition function, plus the parent's point."""

MIN_POINTS = limits.MIN_PB2_POINTS
"""Fewer observations than this say nothing: the caller falls back to perturbation."""


def propose(
    times: np.ndarray,
    points: np.ndarray,
    improvements: np.ndarray,
    parent: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """The child's point in the unit cube.

    Args:
        times: (n,) when each observation ended (any unit; rescaled to [0, 1] here).
        points: (n, d) hyperparameters of each observation, each in [0, 1].
        improvements: (n,) improvement per step over the interval (larger is better). Only their
            order among observations of the same time matters (see `_ranks`): early intervals
            improve more than late ones whatever the hyperparameters, and PB2's question is which
            setting did best at a given time.
        parent: (d,) the parent's point, always a candidate.
        rng: the decision's generator (the candidates).

    Raises:
        ValueError: fewer than `MIN_POINTS` observations or mismatched shapes.
    """
    n, d = points.shape
    if n < MIN_POINTS or times.shape != (n,) or improvements.shape != (n,) or parent.shape != (d,):
        raise ValueError(f"pb2 needs at least {MIN_POINTS} observations of matching shapes, got {n}")
    span = float(times.max() - times.min())
    scaled_time = (times - times.min()) / span if span > 0 else np.zeros(n)
    features = np.column_stack([scaled_time, points])
    y = np.zeros(n)
    for t in np.unique(times):  # contemporaries only: early intervals improve more whatever the setting
        at = times == t
        y[at] = _ranks(improvements[at])
    from threadpoolctl import threadpool_limits

    candidates = np.vstack([rng.random((CANDIDATES, d)), parent[None, :]])
    at_now = np.column_stack([np.ones(len(candidates)), candidates])
    with threadpool_limits(limits=1, user_api="blas"):
        gp = _fit(features, y)
        mean, std = gp.predict(at_now, return_std=True)
    best: np.ndarray = candidates[int(np.argmax(mean + UCB_KAPPA * std))]
    return best


def warm_up() -> None:
    """Import scikit-learn's GP now (it takes seconds), not in the first PB2 suggestion. A
    no-op where scikit-learn is missing: then PB2 studies fail loudly when they first explore."""
    try:
        import scipy.stats  # noqa: F401
        import sklearn.gaussian_process  # noqa: F401
        import threadpoolctl  # noqa: F401
    except ImportError:
        pass


def _fit(features: np.ndarray, y: np.ndarray) -> Any:
    """The GP (a fitted `GaussianProcessRegressor`) of highest log marginal likelihood among the
    `LENGTH_SCALES`."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    best: Any = None
    for scale in LENGTH_SCALES:
        lengths = np.full(features.shape[1], scale)
        lengths[0] = 1.0
        kernel = ConstantKernel(RANK_VARIANCE) * RBF(lengths) + WhiteKernel(RANK_VARIANCE / 3)
        gp = GaussianProcessRegressor(kernel=kernel, optimizer=None).fit(features, y)
        if best is None or gp.log_marginal_likelihood_value_ > best.log_marginal_likelihood_value_:
            best = gp
    assert best is not None
    return best


def _ranks(values: np.ndarray) -> np.ndarray:
    """Improvements as centred ranks in [-1, 1] (ties averaged, by scipy's `rankdata`; a single
    value is 0): a lineage that nearly diverged can improve by 1e100 in one interval, and on raw
    values that one point would flatten the GP everywhere else. PB2 normalises its targets too;
    ranks make that robust."""
    from scipy.stats import rankdata  # scikit-learn's own dependency

    if len(values) < 2:
        return np.zeros(len(values))
    ranks = np.asarray(rankdata(values, method="average"), dtype=float) - 1
    return 2 * ranks / (len(values) - 1) - 1
