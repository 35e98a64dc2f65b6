"""The explore step: a child's hyperparameters from its parent's, by the study's strategy.

PERTURB and RESAMPLE are `mutation.mutate_hparams`. PB2 first perturbs everything (discrete and
categorical parameters keep that), then lets `pb2.propose` choose the float and integer ones that
are not frozen, in the unit cube (log-scaled floats in log space), from the improvements the
recent generations made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pbt_service.core import pb2
from pbt_service.core.fitness import fitness
from pbt_service.core.mutation import mutate_hparams
from pbt_service.core.search_space import is_active, pb2_parameters
from pbt_service.core.types import (
    ExploreStrategy,
    HParams,
    ParameterSpec,
    ParameterType,
    ParamValue,
    Scale,
    StudyConfig,
    Trial,
)


def explore(
    config: StudyConfig, parent: HParams, history: Sequence[Trial], rng: np.random.Generator
) -> dict[str, ParamValue]:
    """The child's hyperparameters. `history` is PB2's data (see `PopulationView.history`)."""
    algo = config.algorithm
    resample = algo.explore.resample_probability if algo.explore.strategy is ExploreStrategy.RESAMPLE else 0.0
    child = mutate_hparams(config.parameters, parent, algo.perturbation_factors, rng, resample)
    if algo.explore.strategy is not ExploreStrategy.PB2:
        return child
    tuned = [p for p in pb2_parameters(config.parameters) if is_active(p, child) and p.name in parent]
    if not tuned:
        return child
    observed = [
        (t, improvement)
        for t in history[: algo.explore.pb2_max_points]
        if (improvement := improvement_per_step(t, config)) is not None and all(p.name in t.hparams for p in tuned)
    ]
    if len(observed) < pb2.MIN_POINTS:
        return child
    times = np.array([t.final_measurement.step if t.final_measurement else 0 for t, _ in observed], dtype=float)
    points = np.array([[to_unit(p, t.hparams[p.name]) for p in tuned] for t, _ in observed])
    gains = np.array([g for _, g in observed])
    best = pb2.propose(times, points, gains, np.array([to_unit(p, parent[p.name]) for p in tuned]), rng)
    for p, u in zip(tuned, best, strict=True):
        child[p.name] = from_unit(p, float(u))
    return child


def improvement_per_step(trial: Trial, config: StudyConfig) -> float | None:
    """The primary objective's gain per step over the trial's own interval (oriented: larger is
    better), or None for a trial that starts a lineage or diverged."""
    own = fitness(trial.final_measurement, config.objectives)
    if own is None or not trial.lineage.history or trial.final_measurement is None:
        return None
    start_step, start = trial.lineage.history[-1]
    steps = trial.final_measurement.step - start_step
    return (own[0] - start[0]) / steps if steps > 0 else None


def to_unit(spec: ParameterSpec, value: ParamValue) -> float:
    """A float or integer value in [0, 1] of its bounds (log space for log-scaled floats)."""
    x = float(value)
    if spec.scale is Scale.LOG:
        low, high, x = math.log(spec.low), math.log(spec.high), math.log(max(x, spec.low))
    else:
        low, high = float(spec.low), float(spec.high)
    return min(max((x - low) / (high - low), 0.0), 1.0)


def from_unit(spec: ParameterSpec, u: float) -> ParamValue:
    """The inverse of `to_unit`, clipped to the bounds; integers are rounded."""
    if spec.scale is Scale.LOG:
        x = math.exp(math.log(spec.low) + u * (math.log(spec.high) - math.log(spec.low)))
    else:
        x = spec.low + u * (spec.high - spec.low)
    x = min(max(x, spec.low), spec.high)
    return int(round(x)) if spec.type is ParameterType.INTEGER else float(x)
