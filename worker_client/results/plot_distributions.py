"""The hyperparameters plot's data: each hyperparameter's distribution per generation, and the
helpers that pick a study's parameters and read their values as numbers (the schedule plot uses
them too). Kept apart from `plot_data`, which computes the other plots' data; like it, free of any
plotting library."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pbt_service.core.types import ParameterSpec, ParameterType, ParamValue

if TYPE_CHECKING:
    from worker_client.results.plot_data import PlotInput


def parameters(inp: PlotInput, trials: Sequence[Mapping[str, ParamValue]]) -> list[ParameterSpec]:
    """The study's parameters that any of these hyperparameter sets has, in config order."""
    used = {name for h in trials for name in h}
    return [p for p in inp.study.config.parameters if p.name in used]


def numeric(value: ParamValue | None) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


@dataclass(frozen=True)
class Distribution:
    """Numeric parameters: (jittered generation, value, trial id) points and each generation's
    median; categorical ones: per category, the count in each of `generations`."""

    spec: ParameterSpec
    generations: tuple[int, ...]
    points: tuple[tuple[float, float, int], ...] = ()
    medians: tuple[float, ...] = ()
    counts: Mapping[str, tuple[int, ...]] | None = None


def distributions(inp: PlotInput) -> tuple[Distribution, ...]:
    """Every trial's hyperparameters (running ones too: they are known at creation), per
    parameter. Jitter is an even spread within the generation, so the figures are reproducible."""
    generations = tuple(sorted({t.generation for t in inp.trials}))
    out = []
    for spec in parameters(inp, [t.hparams for t in inp.trials]):
        having = [t for t in inp.trials if spec.name in t.hparams]
        if spec.type is ParameterType.CATEGORICAL:
            counted = Counter((t.generation, str(t.hparams[spec.name])) for t in having)
            names = [str(v) for v in spec.values] or sorted({c for _, c in counted})
            counts = {c: tuple(counted[(g, c)] for g in generations) for c in names}
            out.append(Distribution(spec, generations, counts=counts))
            continue
        points, medians = [], []
        for g in generations:
            group = [t for t in having if t.generation == g]
            values = sorted(numeric(t.hparams[spec.name]) for t in group)
            medians.append(_median(values))
            for k, t in enumerate(group):
                jitter = 0.0 if len(group) == 1 else -0.3 + 0.6 * k / (len(group) - 1)
                points.append((g + jitter, numeric(t.hparams[spec.name]), t.id))
        out.append(Distribution(spec, generations, tuple(points), tuple(medians)))
    return tuple(out)


def _median(values: Sequence[float]) -> float:
    if not values:
        return math.nan
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
