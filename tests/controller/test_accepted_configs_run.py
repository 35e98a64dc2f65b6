"""Every config CreateStudy accepts can be run: configs drawn at the limits of `pbt_service.limits`
(bounds at ±MAX_ABS_NUMBER, full int64 ranges, factors up to MAX_PERTURBATION_FACTOR, the longest
non-ASCII names, conditions), and now and then beyond them, are created; those accepted are driven
through suggest → report → complete for a few generations on every backend. Nothing but a domain
error (`pbt_service.core.errors`) may come out, and every suggested value lies in its domain."""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pbt_service import converters, limits
from pbt_service.controller import Controller
from pbt_service.core.errors import InvalidArgumentError, PbtError
from pbt_service.core.search_space import is_active, validate_config
from pbt_service.core.types import (
    AlgorithmConfig,
    Comparison,
    Condition,
    Goal,
    Measurement,
    MedianStopping,
    Objective,
    ParameterSpec,
    ParameterType,
    ParamValue,
    Scale,
    StudyConfig,
    Trial,
)

BIG = limits.MAX_ABS_NUMBER
LONG = limits.MAX_NAME_LENGTH
NAME_CHARS = st.characters(exclude_categories=["Cc", "Cs", "Zl", "Zp"])
ANY_CHARS = st.characters(exclude_categories=["Cs"])  # what a protobuf string can carry


@dataclasses.dataclass(frozen=True)
class Values:
    """Where a config's names and numbers come from: at the limits, or (`beyond`) now and then past
    them, which checks that whatever is accepted runs, whatever the validation lets through."""

    names: st.SearchStrategy[str]
    numbers: st.SearchStrategy[float]
    positive: st.SearchStrategy[float]
    factors: st.SearchStrategy[float]


_LIMIT_NAMES = (st.text(NAME_CHARS, min_size=1, max_size=8), st.text(NAME_CHARS, min_size=LONG, max_size=LONG))
_LIMIT_NUMBERS = (st.sampled_from([-BIG, BIG, 0.0, -1.0, 1.0, 5e-324]), st.floats(-BIG, BIG))
_LIMIT_POSITIVE = (st.sampled_from([5e-324, 1e-300, 1.0, BIG]), st.floats(0, BIG, exclude_min=True))
_LIMIT_FACTORS = (
    st.sampled_from([limits.MAX_PERTURBATION_FACTOR, 5e-324, 1e-300, 0.8, 1.2]),
    st.floats(0, limits.MAX_PERTURBATION_FACTOR, exclude_min=True),
)
AT_THE_LIMITS = Values(
    st.one_of(*_LIMIT_NAMES), st.one_of(*_LIMIT_NUMBERS), st.one_of(*_LIMIT_POSITIVE), st.one_of(*_LIMIT_FACTORS)
)
BEYOND = Values(
    names=st.one_of(
        *_LIMIT_NAMES, st.text(ANY_CHARS, min_size=1, max_size=8), st.text(NAME_CHARS, min_size=LONG + 1, max_size=300)
    ),
    numbers=st.one_of(*_LIMIT_NUMBERS, st.sampled_from([-1.7e308, 1.7e308]), st.floats(allow_nan=False)),
    positive=st.one_of(*_LIMIT_POSITIVE, st.floats(0, exclude_min=True)),
    factors=st.one_of(*_LIMIT_FACTORS, st.sampled_from([100.5, 1e308]), st.floats(0, exclude_min=True)),
)
INT64 = st.one_of(
    st.sampled_from([limits.MIN_INT64, limits.MAX_INT64, 0, 1, -1]), st.integers(limits.MIN_INT64, limits.MAX_INT64)
)
METRIC_VALUES = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, 0.0]), st.floats())
_names = itertools.count()


def _two_sorted(values: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, Any]]:
    return st.lists(values, min_size=2, max_size=2, unique=True).map(lambda v: (min(v), max(v)))


@st.composite
def _domain(draw: st.DrawFn, name: str, v: Values) -> ParameterSpec:
    kind = draw(st.sampled_from(ParameterType))
    frozen = draw(st.booleans())
    if kind is ParameterType.FLOAT:
        log = draw(st.booleans())
        low, high = draw(_two_sorted(v.positive if log else v.numbers))
        scale = Scale.LOG if log else Scale.LINEAR
        return ParameterSpec(name, kind, low=low, high=high, scale=scale, frozen=frozen)
    if kind is ParameterType.INTEGER:
        low, high = draw(_two_sorted(INT64))
        return ParameterSpec(name, kind, low=low, high=high, frozen=frozen)
    if kind is ParameterType.DISCRETE:
        values = draw(st.lists(v.numbers, min_size=2, max_size=6, unique=True))
        return ParameterSpec(name, kind, values=tuple(sorted(values)), frozen=frozen)
    categories = draw(st.lists(v.names, min_size=1, max_size=4, unique=True))
    return ParameterSpec(name, kind, values=tuple(categories), frozen=frozen)


def _parent_values(draw: st.DrawFn, parent: ParameterSpec) -> tuple[ParamValue, ...]:
    if parent.type is ParameterType.INTEGER:
        low, high = int(parent.low), int(parent.high)
        return tuple(draw(st.lists(st.sampled_from([low, high, (low + high) // 2]), min_size=1, max_size=3)))
    return tuple(draw(st.lists(st.sampled_from(parent.values), min_size=1, max_size=3)))


@st.composite
def configs(draw: st.DrawFn) -> StudyConfig:
    """A config with its numbers and names at the limits (now and then beyond), as it arrives over
    the wire."""
    v = draw(st.sampled_from([AT_THE_LIMITS, AT_THE_LIMITS, AT_THE_LIMITS, BEYOND]))
    names = draw(st.lists(v.names, min_size=1, max_size=4, unique=True))
    parameters: list[ParameterSpec] = []
    for name in names:
        spec = draw(_domain(name, v))
        parents = [p for p in parameters if p.type is not ParameterType.FLOAT]
        conditional: bool = draw(st.booleans())
        if parents and conditional:
            parent = draw(st.sampled_from(parents))
            spec = dataclasses.replace(spec, condition=Condition(parent.name, _parent_values(draw, parent)))
        parameters.append(spec)
    metrics = draw(st.lists(v.names, min_size=1, max_size=3, unique=True))
    algorithm = AlgorithmConfig(
        population_size=draw(st.integers(2, 3)),
        opponent_generations=draw(st.integers(1, 3)),
        perturbation_factors=tuple(draw(st.lists(v.factors, min_size=1, max_size=4))),
        max_generations=draw(st.sampled_from([0, 3])),
        seed=draw(INT64),
        median_stopping=MedianStopping(enabled=draw(st.booleans()), min_completed_trials=1, min_measurements=1),
    )
    config = StudyConfig(
        parameters=tuple(parameters),
        objectives=tuple(Objective(m, draw(st.sampled_from(Goal))) for m in metrics),
        comparison=draw(st.sampled_from(Comparison)),
        algorithm=algorithm,
    )
    return converters.study_config_from_proto(converters.study_config_to_proto(config))


def _in_domain(spec: ParameterSpec, value: ParamValue) -> bool:
    if spec.type is ParameterType.FLOAT:
        return isinstance(value, float) and spec.low <= value <= spec.high
    if spec.type is ParameterType.INTEGER:
        return isinstance(value, int) and spec.low <= value <= spec.high
    if spec.type is ParameterType.DISCRETE:
        return value in spec.values
    return isinstance(value, str) and value in spec.values


def _check_hparams(config: StudyConfig, trial: Trial) -> None:
    for spec in config.parameters:
        if spec.name in trial.hparams:
            assert _in_domain(spec, trial.hparams[spec.name]), (spec, trial.hparams[spec.name])
            assert is_active(spec, trial.hparams)


def _train(app: Controller, config: StudyConfig, trial: Trial, worker: str, values: list[float]) -> None:
    """Two reports and a completion; a domain error (say, a trial stopped meanwhile) is allowed."""
    try:
        for step in (1, 2):
            metrics = {
                o.metric: values[(trial.number + step + i) % len(values)] for i, o in enumerate(config.objectives)
            }
            app.report(trial.id, worker, Measurement(step, metrics, checkpoint_path=f"/ckpt/{trial.id}/{step}"))
        app.complete(trial.id, worker)
    except PbtError:
        pass


def _reported(parameter: ParameterSpec, factors: tuple[float, ...] = (0.8, 1.2)) -> StudyConfig:
    """A config of issue 9: one parameter, one objective, two members per generation."""
    algorithm = AlgorithmConfig(population_size=2, perturbation_factors=factors)
    return StudyConfig((parameter,), (Objective("score"),), algorithm=algorithm)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@example(config=_reported(ParameterSpec("x", ParameterType.FLOAT, low=-1.7e308, high=1.7e308)), values=[1.0])
@example(config=_reported(ParameterSpec("n", ParameterType.INTEGER, low=1, high=10), (1e308,)), values=[1.0, 2.0])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=configs(), values=st.lists(METRIC_VALUES, min_size=1, max_size=5))
def test_every_accepted_config_runs_for_generations(app: Controller, config: StudyConfig, values: list[float]) -> None:
    name = f"s{next(_names)}"
    try:
        app.create_study(name, config)
    except InvalidArgumentError:
        with pytest.raises(InvalidArgumentError):
            validate_config(config)
        return
    worker = "w" * limits.MAX_WORKER_ID_LENGTH
    generations = set()
    for _ in range(12):
        suggestion = app.suggest(name, worker, count=config.algorithm.population_size)
        if suggestion.study_done:
            break
        for trial in suggestion.trials:
            _check_hparams(config, trial)
            generations.add(trial.generation)
            _train(app, config, trial, worker, values)
        if max(generations, default=0) >= 2:
            break
    assert 0 in generations
    page = app.list_trials(name, page_size=limits.MAX_PAGE_SIZE)
    for trial in page.trials:
        _check_hparams(config, trial)
