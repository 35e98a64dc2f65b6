"""Mutation of a parent's hyperparameters (paper section 3.5.2, the "explore" step of PBT)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pbt_service.core.search_space import is_active, sample_value, topological_order
from pbt_service.core.types import HParams, ParameterSpec, ParameterType, ParamValue


def mutate_value(
    spec: ParameterSpec,
    value: ParamValue,
    factors: Sequence[float],
    rng: np.random.Generator,
) -> ParamValue:
    """Perturb one value so the child explores near its parent.

    FLOAT: times a factor drawn uniformly from `factors`, clipped to the bounds. INTEGER: the
    same, rounded, but always moved by at least one so small integers do not get stuck
    (round(1 * 1.2) == 1). DISCRETE: a neighbouring value. CATEGORICAL: resampled uniformly.

    Example:
        >>> spec = ParameterSpec("lr", ParameterType.FLOAT, low=1e-4, high=1.0)
        >>> mutate_value(spec, 0.1, (0.8, 1.2), np.random.default_rng(0)) in (0.08, 0.12)
        True
    """
    if spec.type is ParameterType.FLOAT:
        factor = factors[int(rng.integers(len(factors)))]
        return float(min(max(float(value) * factor, spec.low), spec.high))
    if spec.type is ParameterType.INTEGER:
        factor = factors[int(rng.integers(len(factors)))]
        return _mutate_integer(int(value), factor, int(spec.low), int(spec.high))
    if spec.type is ParameterType.DISCRETE:
        return _mutate_discrete(float(value), [float(v) for v in spec.values], rng)
    return str(spec.values[int(rng.integers(len(spec.values)))])


def mutate_hparams(
    parameters: Sequence[ParameterSpec],
    hparams: HParams,
    factors: Sequence[float],
    rng: np.random.Generator,
    resample_probability: float = 0.0,
) -> dict[str, ParamValue]:
    """The child's hyperparameters from the parent's.

    Conditions are checked against the child's new values, so a mutated parent can switch a
    parameter on (it is sampled fresh, as there is nothing to inherit, even when frozen) or off
    (it is dropped). Frozen parameters are inherited unchanged. Each other parameter is redrawn
    from its prior with `resample_probability` (Ray Tune's `resample_probability`), else perturbed;
    with 0 no extra random draw is made, so perturb-only studies decide as they always did.
    """
    child: dict[str, ParamValue] = {}
    for spec in topological_order(parameters):
        if not is_active(spec, child):
            continue
        if spec.name not in hparams:
            child[spec.name] = sample_value(spec, rng)
        elif spec.frozen:
            child[spec.name] = hparams[spec.name]
        elif resample_probability > 0 and rng.random() < resample_probability:
            child[spec.name] = sample_value(spec, rng)
        else:
            child[spec.name] = mutate_value(spec, hparams[spec.name], factors, rng)
    return child


def _mutate_integer(value: int, factor: float, low: int, high: int) -> int:
    """Scale, round, and force a move of one step: towards where the factor points, or away
    from a bound the step would cross."""
    moved = value * factor - value
    step = 1 if moved > 0 or (moved == 0 and factor >= 1) else -1
    new = round(value * factor)
    if new == value:
        new = value + step
    new = min(max(new, low), high)
    if new == value:
        new = min(max(value - step, low), high)
    return new


def _mutate_discrete(value: float, values: list[float], rng: np.random.Generator) -> float:
    """Move to the largest smaller or the smallest larger element (values are increasing)."""
    i = int(np.argmin([abs(v - value) for v in values]))
    neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(values)]
    return values[neighbours[int(rng.integers(len(neighbours)))]]
