"""Pareto fronts of two objectives to minimize: which points are not dominated, and the
hypervolume they dominate up to a reference point (the usual one-number summary of a front: it
grows when a point moves toward the origin and when the front covers more of the trade-off).

    >>> hypervolume([(1.0, 2.0), (2.0, 1.0)], reference=(3.0, 3.0))
    3.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _usable(points: Sequence[Sequence[float]], reference: Sequence[float]) -> np.ndarray:
    """The finite points strictly better than `reference` in both objectives, as an (n, 2) array.
    Raises ValueError when the points or the reference are not two-dimensional."""
    if len(reference) != 2:
        raise ValueError(f"reference must have two coordinates, got {tuple(reference)!r}")
    array = np.asarray(points, dtype=np.float64) if len(points) else np.empty((0, 2))
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"points must have two coordinates each, got {points!r}")
    ref = np.asarray(reference, dtype=np.float64)
    keep = np.all(np.isfinite(array), axis=1) & np.all(array < ref, axis=1)
    usable: np.ndarray = array[keep]
    return usable


def pareto_front(points: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    """The non-dominated points among finite `points` (two objectives, both minimized), sorted by
    the first objective; duplicates are kept once."""
    inf = (np.inf, np.inf)
    array = _usable(points, inf)
    front: list[tuple[float, float]] = []
    best_second = np.inf
    for first, second in sorted({(float(a), float(b)) for a, b in array}):
        if second < best_second:
            front.append((first, second))
            best_second = second
    return front


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The area dominated by `points` and bounded by `reference` (both objectives minimized).

    Points that are not finite or not strictly better than the reference in both objectives add
    nothing; an empty front has hypervolume 0. Computed by sweeping the front in order of the
    first objective and adding one horizontal slab per point. Raises ValueError when a point or
    the reference does not have two coordinates.
    """
    ref_first, ref_second = float(reference[0]), float(reference[1])
    usable = _usable(points, reference)
    area = 0.0
    previous_second = ref_second
    for first, second in pareto_front([tuple(p) for p in usable]):
        area += (ref_first - first) * (previous_second - second)
        previous_second = second
    return area
