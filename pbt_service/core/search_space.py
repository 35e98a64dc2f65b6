"""Search space: config validation, condition ordering and random sampling.

Validation runs once when a study is created, so the rest of the engine can trust the config:
sampling and mutation never re-check bounds or condition graphs.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np

from pbt_service import limits
from pbt_service.core.errors import InvalidArgumentError
from pbt_service.core.types import (
    AlgorithmConfig,
    ExploreStrategy,
    HParams,
    Objective,
    ParameterSpec,
    ParameterType,
    ParamValue,
    Scale,
    SelectionScore,
    StudyConfig,
)

_DOMAIN_FIELD = {
    ParameterType.FLOAT: "float_range",
    ParameterType.INTEGER: "integer_range",
    ParameterType.DISCRETE: "discrete",
    ParameterType.CATEGORICAL: "categorical",
}


def validate_config(config: StudyConfig) -> None:
    """Reject a study config the engine cannot run.

    Every config it accepts can be run: names fit both databases (`limits.MAX_NAME_LENGTH`, no
    control characters), collections are bounded, and numbers are small enough that sampling and
    every mutation stay finite (`limits.MAX_ABS_NUMBER`, `limits.MAX_PERTURBATION_FACTOR`).

    Raises:
        InvalidArgumentError: the message starts with the path of the bad field, e.g.
            ``config.parameters[2].float_range: low (1.0) must be less than high (0.5)``, and quotes
            at most a short prefix of an offending value (`limits.quote`).

    Example:
        >>> validate_config(StudyConfig(parameters=(), objectives=()))
        Traceback (most recent call last):
        pbt_service.core.errors.InvalidArgumentError: config.parameters: at least one parameter is required
    """
    _validate_parameters(config.parameters)
    _validate_objectives(config.objectives)
    _validate_algorithm(config.algorithm)
    _validate_search(config)
    _in_range(config.checkpoints.keep_best, 0, limits.MAX_KEEP_BEST, "config.checkpoints.keep_best")


def topological_order(parameters: Sequence[ParameterSpec]) -> tuple[ParameterSpec, ...]:
    """Order parameters so every condition parent comes before its children.

    Among parameters whose parents are placed, the earliest declared goes first, so a space
    without conditions keeps its declaration order (and so its RNG draw order). A parent that is
    not declared is ignored here; `validate_config` rejects it.

    Raises:
        InvalidArgumentError: the conditions form a cycle.
    """
    index = {p.name: i for i, p in enumerate(parameters)}
    children: dict[int, list[int]] = {i: [] for i in range(len(parameters))}
    waiting = [0] * len(parameters)
    for i, p in enumerate(parameters):
        if p.condition is not None and p.condition.parent in index:
            children[index[p.condition.parent]].append(i)
            waiting[i] = 1
    ready = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order: list[ParameterSpec] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(parameters[i])
        for c in children[i]:
            heapq.heappush(ready, c)
    if len(order) < len(parameters):
        raise InvalidArgumentError(f"conditions form a cycle (child -> parent): {_cycle_text(parameters)}")
    return tuple(order)


def is_active(spec: ParameterSpec, hparams: HParams) -> bool:
    """Whether `spec` exists given the (already decided) values of its parents.

    Numbers compare as floats so an integer parent value 3 matches a condition value 3.0.
    """
    if spec.condition is None:
        return True
    parent = spec.condition.parent
    if parent not in hparams:
        return False
    return any(_same_value(hparams[parent], v) for v in spec.condition.values)


def sample_value(spec: ParameterSpec, rng: np.random.Generator) -> ParamValue:
    """Draw one value uniformly (log-uniformly for LOG floats) from the parameter's domain."""
    if spec.type is ParameterType.FLOAT:
        if spec.scale is Scale.LOG:
            x = math.exp(rng.uniform(math.log(spec.low), math.log(spec.high)))
        else:
            x = rng.uniform(spec.low, spec.high)
        return float(min(max(x, spec.low), spec.high))
    if spec.type is ParameterType.INTEGER:
        return int(rng.integers(int(spec.low), int(spec.high), endpoint=True))
    choice = spec.values[int(rng.integers(len(spec.values)))]
    if spec.type is ParameterType.DISCRETE:
        return float(choice)
    return str(choice)


def sample_hparams(parameters: Sequence[ParameterSpec], rng: np.random.Generator) -> dict[str, ParamValue]:
    """Sample a fresh configuration; parameters whose condition fails are left out."""
    hparams: dict[str, ParamValue] = {}
    for spec in topological_order(parameters):
        if is_active(spec, hparams):
            hparams[spec.name] = sample_value(spec, rng)
    return hparams


def pb2_parameters(parameters: Sequence[ParameterSpec]) -> list[ParameterSpec]:
    """The parameters PB2 chooses: floats and integers that are not frozen (validation refuses a
    PB2 study without one)."""
    return [p for p in parameters if p.type in (ParameterType.FLOAT, ParameterType.INTEGER) and not p.frozen]


def _same_value(a: ParamValue, b: ParamValue) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return float(a) == float(b)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _find_cycle(parameters: Sequence[ParameterSpec]) -> list[str]:
    """Names along one cycle, each followed by its condition parent, the first repeated at the end."""
    parent_of = {p.name: p.condition.parent for p in parameters if p.condition is not None}
    for start in parent_of:
        path = [start]
        node = start
        while node in parent_of:
            node = parent_of[node]
            if node in path:
                return [*path[path.index(node) :], node]
            path.append(node)
    return []


def _cycle_text(parameters: Sequence[ParameterSpec]) -> str:
    return limits.shorten(" -> ".join(_find_cycle(parameters)))


def _validate_parameters(parameters: Sequence[ParameterSpec]) -> None:
    if not parameters:
        raise InvalidArgumentError("config.parameters: at least one parameter is required")
    limits.check_count(parameters, limits.MAX_PARAMETERS, "config.parameters", "parameters")
    seen: set[str] = set()
    for i, p in enumerate(parameters):
        path = f"config.parameters[{i}]"
        limits.check_name(p.name, f"{path}.name")
        if p.name in seen:
            raise InvalidArgumentError(f"{path}.name: duplicate parameter name {limits.quote(p.name)}")
        seen.add(p.name)
        _validate_domain(p, f"{path}.{_DOMAIN_FIELD[p.type]}")
    by_name = {p.name: p for p in parameters}
    for i, p in enumerate(parameters):
        _validate_condition(p, by_name, f"config.parameters[{i}].condition")
    cycle = _find_cycle(parameters)
    if cycle:
        i = next(i for i, p in enumerate(parameters) if p.name == cycle[0])
        raise InvalidArgumentError(
            f"config.parameters[{i}].condition: conditions form a cycle (child -> parent): {_cycle_text(parameters)}"
        )


def _validate_domain(p: ParameterSpec, path: str) -> None:
    if p.scale is Scale.LOG and p.type is not ParameterType.FLOAT:
        raise InvalidArgumentError(f"{path}: only float parameters may use the log scale")
    if p.type is ParameterType.FLOAT:
        _validate_number(p.low, f"{path}.low")
        _validate_number(p.high, f"{path}.high")
    elif p.type is ParameterType.INTEGER:
        for bound, name in ((p.low, "low"), (p.high, "high")):
            if not (_is_number(bound) and math.isfinite(bound) and float(bound).is_integer()):
                raise InvalidArgumentError(f"{path}.{name}: must be an integer, got {bound!r}")
            if not limits.MIN_INT64 <= int(bound) <= limits.MAX_INT64:
                raise InvalidArgumentError(f"{path}.{name}: must fit in 64 bits, got {int(bound)}")
    if p.type in (ParameterType.FLOAT, ParameterType.INTEGER):
        if not p.low < p.high:
            raise InvalidArgumentError(f"{path}: low ({p.low}) must be less than high ({p.high})")
        if p.scale is Scale.LOG and p.low <= 0:
            raise InvalidArgumentError(f"{path}: the log scale requires low > 0, got {p.low}")
        return
    values = f"{path}.values"
    limits.check_count(p.values, limits.MAX_VALUES_PER_PARAMETER, values, "values")
    if p.type is ParameterType.DISCRETE:
        if len(p.values) < 2:
            raise InvalidArgumentError(f"{values}: at least two values are required")
        for j, v in enumerate(p.values):
            _validate_number(v, f"{values}[{j}]")
        nums = [float(v) for v in p.values]
        for j in range(1, len(nums)):
            if nums[j - 1] >= nums[j]:
                raise InvalidArgumentError(
                    f"{values}[{j}]: must be greater than the value before it (strictly increasing), "
                    f"got {nums[j - 1]!r} then {nums[j]!r}"
                )
    else:
        if not p.values:
            raise InvalidArgumentError(f"{values}: at least one value is required")
        seen: set[ParamValue] = set()
        for j, v in enumerate(p.values):
            if not isinstance(v, str):
                raise InvalidArgumentError(f"{values}[{j}]: must be a string, got {type(v).__name__}")
            limits.check_name(v, f"{values}[{j}]")
            if v in seen:
                raise InvalidArgumentError(f"{values}[{j}]: duplicate value {limits.quote(v)}")
            seen.add(v)


def _validate_number(v: ParamValue, path: str) -> None:
    """A finite number of magnitude at most `limits.MAX_ABS_NUMBER`."""
    if not _is_number(v):
        raise InvalidArgumentError(f"{path}: must be a number, got {type(v).__name__}")
    x = float(v)
    if not (math.isfinite(x) and abs(x) <= limits.MAX_ABS_NUMBER):
        raise InvalidArgumentError(
            f"{path}: must be a finite number between -{limits.MAX_ABS_NUMBER:g} and "
            f"{limits.MAX_ABS_NUMBER:g}, got {x!r}"
        )


def _validate_condition(p: ParameterSpec, by_name: dict[str, ParameterSpec], path: str) -> None:
    c = p.condition
    if c is None:
        return
    limits.check_name(c.parent, f"{path}.parent")
    if c.parent == p.name:
        raise InvalidArgumentError(f"{path}.parent: a parameter cannot depend on itself ({limits.quote(p.name)})")
    parent = by_name.get(c.parent)
    if parent is None:
        raise InvalidArgumentError(f"{path}.parent: unknown parameter {limits.quote(c.parent)}")
    if parent.type is ParameterType.FLOAT:
        raise InvalidArgumentError(
            f"{path}.parent: {limits.quote(c.parent)} is a float; only categorical, integer or "
            "discrete parameters can be parents"
        )
    if not c.values:
        raise InvalidArgumentError(f"{path}.values: at least one parent value is required")
    limits.check_count(c.values, limits.MAX_VALUES_PER_PARAMETER, f"{path}.values", "values")
    for v in c.values:
        if not _is_legal(parent, v):
            shown = limits.quote(v) if isinstance(v, str) else repr(v)
            raise InvalidArgumentError(f"{path}.values: {shown} is not a value of parent {limits.quote(c.parent)}")


def _is_legal(parent: ParameterSpec, v: ParamValue) -> bool:
    if parent.type is ParameterType.CATEGORICAL:
        return isinstance(v, str) and v in parent.values
    if not _is_number(v) or not math.isfinite(float(v)):
        return False
    if parent.type is ParameterType.INTEGER:
        return float(v).is_integer() and parent.low <= float(v) <= parent.high
    return any(float(v) == float(x) for x in parent.values)


def _validate_objectives(objectives: Sequence[Objective]) -> None:
    if not objectives:
        raise InvalidArgumentError("config.objectives: at least one objective is required")
    limits.check_count(objectives, limits.MAX_OBJECTIVES, "config.objectives", "objectives")
    seen: set[str] = set()
    for i, o in enumerate(objectives):
        limits.check_name(o.metric, f"config.objectives[{i}].metric")
        if o.metric in seen:
            raise InvalidArgumentError(f"config.objectives[{i}].metric: duplicate metric {limits.quote(o.metric)}")
        seen.add(o.metric)


def _validate_algorithm(a: AlgorithmConfig) -> None:
    path = "config.algorithm"
    _in_range(a.population_size, 2, limits.MAX_POPULATION_SIZE, f"{path}.population_size")
    _in_range(a.opponent_generations, 1, limits.MAX_OPPONENT_GENERATIONS, f"{path}.opponent_generations")
    factors = a.perturbation_factors
    if not factors:
        raise InvalidArgumentError(f"{path}.perturbation_factors: at least one factor is required")
    limits.check_count(factors, limits.MAX_PERTURBATION_FACTORS, f"{path}.perturbation_factors", "factors")
    for j, f in enumerate(factors):
        if not (_is_number(f) and math.isfinite(f) and 0 < f <= limits.MAX_PERTURBATION_FACTOR):
            raise InvalidArgumentError(
                f"{path}.perturbation_factors[{j}]: must be greater than 0 and at most "
                f"{limits.MAX_PERTURBATION_FACTOR:g}, got {f!r}"
            )
    _not_negative(a, ("max_generations", "max_trials", "steps_per_trial", "rejuvenate_after_generations"), path)
    ms = a.median_stopping
    if ms.min_completed_trials < 1:
        raise InvalidArgumentError(
            f"{path}.median_stopping.min_completed_trials: must be at least 1, got {ms.min_completed_trials}"
        )
    if ms.min_measurements < 1:
        raise InvalidArgumentError(
            f"{path}.median_stopping.min_measurements: must be at least 1, got {ms.min_measurements}"
        )


def _validate_search(config: StudyConfig) -> None:
    """The selection and explore settings (see `SelectionConfig`, `ExploreConfig`)."""
    path = "config.algorithm"
    a = config.algorithm
    sel, exp = a.selection, a.explore
    if not (_is_number(sel.truncation_quantile) and 0 < sel.truncation_quantile <= 0.5):
        raise InvalidArgumentError(
            f"{path}.selection.truncation_quantile: must be greater than 0 and at most 0.5, "
            f"got {sel.truncation_quantile!r}"
        )
    _in_range(sel.score_window, 1, limits.MAX_SCORE_WINDOW, f"{path}.selection.score_window")
    if sel.score is SelectionScore.IMPROVEMENT and sel.score_window < 2:
        raise InvalidArgumentError(
            f"{path}.selection.score_window: IMPROVEMENT compares a lineage's first and last final "
            f"measurement in the window, so it needs at least 2, got {sel.score_window}"
        )
    _in_range(sel.ready_generations, 1, limits.MAX_READY_GENERATIONS, f"{path}.selection.ready_generations")
    _not_negative(sel, ("burn_in_steps", "ready_steps"), f"{path}.selection")
    if not (_is_number(exp.resample_probability) and 0 < exp.resample_probability <= 1):
        raise InvalidArgumentError(
            f"{path}.explore.resample_probability: must be greater than 0 and at most 1, "
            f"got {exp.resample_probability!r}"
        )
    _in_range(exp.pb2_max_points, limits.MIN_PB2_POINTS, limits.MAX_PB2_POINTS, f"{path}.explore.pb2_max_points")
    if exp.strategy is ExploreStrategy.PB2 and not pb2_parameters(config.parameters):
        raise InvalidArgumentError(
            f"{path}.explore.strategy: PB2 tunes float and integer parameters, and this study has none that is "
            "not frozen; use PERTURB or RESAMPLE"
        )


def _not_negative(settings: object, names: tuple[str, ...], path: str) -> None:
    for name in names:
        value = getattr(settings, name)
        if value < 0:
            raise InvalidArgumentError(f"{path}.{name}: must not be negative, got {value}")


def _in_range(value: int, low: int, high: int, path: str) -> None:
    if not low <= value <= high:
        raise InvalidArgumentError(f"{path}: must be between {low} and {high}, got {value}")
