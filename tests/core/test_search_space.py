"""Config validation, condition ordering and sampling."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from pbt_service.core.search_space import (
    is_active,
    sample_hparams,
    sample_value,
    topological_order,
    validate_config,
)
from pbt_service.core.types import (
    AlgorithmConfig,
    Condition,
    MedianStopping,
    Objective,
    ParameterSpec,
    ParameterType,
    ParamValue,
    Scale,
    StudyConfig,
)


def flt(name: str, low: float = 0.0, high: float = 1.0, scale: Scale = Scale.LINEAR) -> ParameterSpec:
    return ParameterSpec(name, ParameterType.FLOAT, low=low, high=high, scale=scale)


def integer(name: str, low: float = 1, high: float = 10) -> ParameterSpec:
    return ParameterSpec(name, ParameterType.INTEGER, low=low, high=high)


def disc(name: str, *values: ParamValue) -> ParameterSpec:
    return ParameterSpec(name, ParameterType.DISCRETE, values=values)


def cat(name: str, *values: ParamValue) -> ParameterSpec:
    return ParameterSpec(name, ParameterType.CATEGORICAL, values=values)


def when(spec: ParameterSpec, parent: str, *values: ParamValue) -> ParameterSpec:
    return replace(spec, condition=Condition(parent, values))


def config(
    *params: ParameterSpec,
    objectives: tuple[Objective, ...] = (Objective("acc"),),
    algorithm: AlgorithmConfig | None = None,
) -> StudyConfig:
    return StudyConfig(parameters=params, objectives=objectives, algorithm=algorithm or AlgorithmConfig())


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- validate_config -------------------------------------------------------------------------


def test_valid_config_with_every_parameter_type_and_conditions_passes() -> None:
    validate_config(
        config(
            flt("lr", 1e-5, 1.0, Scale.LOG),
            integer("layers", 1, 4),
            disc("batch", 16, 32.0, 64),
            cat("opt", "sgd", "adam"),
            when(flt("momentum"), "opt", "sgd"),
            when(integer("width3", 8, 64), "layers", 3, 4.0),
            when(cat("mode", "x"), "batch", 32),
            when(flt("beta"), "mode", "x"),
        )
    )


def test_exact_message_for_inverted_float_range() -> None:
    with pytest.raises(ValueError) as err:
        validate_config(config(flt("a"), flt("b"), flt("c", 1.0, 0.5)))
    assert str(err.value) == "config.parameters[2].float_range: low (1.0) must be less than high (0.5)"


BAD_PARAMETERS: list[tuple[str, tuple[ParameterSpec, ...]]] = [
    ("config.parameters:", ()),
    ("config.parameters[0].name", (flt(""),)),
    ("config.parameters[1].name", (flt("a"), integer("a"))),
    ("config.parameters[0].float_range", (flt("a", 1.0, 1.0),)),
    ("config.parameters[0].float_range", (flt("a", 0.0, math.inf),)),
    ("config.parameters[0].float_range", (flt("a", -math.inf, 0.0),)),
    ("config.parameters[0].float_range", (flt("a", math.nan, 1.0),)),
    ("config.parameters[0].float_range", (flt("a", 0.0, 1.0, Scale.LOG),)),
    ("config.parameters[0].float_range", (flt("a", -1.0, 1.0, Scale.LOG),)),
    ("config.parameters[0].integer_range", (integer("a", 5, 5),)),
    ("config.parameters[0].integer_range", (integer("a", 5, 2),)),
    ("config.parameters[0].integer_range", (integer("a", 0.5, 2),)),
    ("config.parameters[0].integer_range", (integer("a", 0, 2.5),)),
    ("config.parameters[0].integer_range", (integer("a", 0, math.inf),)),
    ("config.parameters[0].integer_range", (replace(integer("a", 1, 5), scale=Scale.LOG),)),
    ("config.parameters[0].discrete", (replace(disc("a", 1, 2), scale=Scale.LOG),)),
    ("config.parameters[0].categorical", (replace(cat("a", "x"), scale=Scale.LOG),)),
    ("config.parameters[0].discrete.values", (disc("a", 1),)),
    ("config.parameters[0].discrete.values", (disc("a", 2, 1),)),
    ("config.parameters[0].discrete.values", (disc("a", 1, 1, 2),)),
    ("config.parameters[0].discrete.values", (disc("a", 1, math.nan),)),
    ("config.parameters[0].discrete.values", (disc("a", 1, math.inf),)),
    ("config.parameters[0].discrete.values", (disc("a", 1, "2"),)),
    ("config.parameters[0].categorical.values", (cat("a"),)),
    ("config.parameters[0].categorical.values", (cat("a", "x", "x"),)),
    ("config.parameters[0].categorical.values", (cat("a", "x", ""),)),
    ("config.parameters[0].categorical.values", (cat("a", "x", 1),)),
    ("config.parameters[1].condition.parent", (flt("a"), when(flt("b"), "nope", 1))),
    ("config.parameters[0].condition.parent", (when(cat("a", "x"), "a", "x"),)),
    ("config.parameters[1].condition.parent", (flt("a"), when(flt("b"), "a", 0.5))),
    ("config.parameters[1].condition.values", (cat("a", "x"), when(flt("b"), "a"))),
    ("config.parameters[1].condition.values", (cat("a", "x"), when(flt("b"), "a", "y"))),
    ("config.parameters[1].condition.values", (cat("a", "x"), when(flt("b"), "a", 1))),
    ("config.parameters[1].condition.values", (integer("a", 1, 3), when(flt("b"), "a", 4))),
    ("config.parameters[1].condition.values", (integer("a", 1, 3), when(flt("b"), "a", 1.5))),
    ("config.parameters[1].condition.values", (integer("a", 1, 3), when(flt("b"), "a", "1"))),
    ("config.parameters[1].condition.values", (disc("a", 1, 2), when(flt("b"), "a", 1.5))),
    ("config.parameters[0].condition", (when(cat("a", "x"), "b", "y"), when(cat("b", "y"), "a", "x"))),
]


@pytest.mark.parametrize(("prefix", "params"), BAD_PARAMETERS)
def test_bad_parameters_are_rejected_naming_the_field(prefix: str, params: tuple[ParameterSpec, ...]) -> None:
    with pytest.raises(ValueError) as err:
        validate_config(config(*params))
    assert str(err.value).startswith(prefix), str(err.value)


def test_condition_cycle_is_reported() -> None:
    params = (
        when(cat("lead", "x"), "a", "x"),
        when(cat("a", "x"), "c", "x"),
        when(cat("b", "x"), "a", "x"),
        when(cat("c", "x"), "b", "x"),
    )
    with pytest.raises(ValueError, match=r"^config\.parameters\[1\]\.condition: .*cycle.*a -> c -> b -> a$"):
        validate_config(config(*params))


BAD_OBJECTIVES: list[tuple[str, tuple[Objective, ...]]] = [
    ("config.objectives:", ()),
    ("config.objectives[0].metric", (Objective(""),)),
    ("config.objectives[1].metric", (Objective("acc"), Objective("acc"))),
]


@pytest.mark.parametrize(("prefix", "objectives"), BAD_OBJECTIVES)
def test_bad_objectives_are_rejected_naming_the_field(prefix: str, objectives: tuple[Objective, ...]) -> None:
    with pytest.raises(ValueError) as err:
        validate_config(config(flt("a"), objectives=objectives))
    assert str(err.value).startswith(prefix), str(err.value)


BAD_ALGORITHMS: list[tuple[str, AlgorithmConfig]] = [
    ("config.algorithm.population_size", AlgorithmConfig(population_size=1)),
    ("config.algorithm.population_size", AlgorithmConfig(population_size=0)),
    ("config.algorithm.opponent_generations", AlgorithmConfig(opponent_generations=0)),
    ("config.algorithm.perturbation_factors", AlgorithmConfig(perturbation_factors=())),
    ("config.algorithm.perturbation_factors", AlgorithmConfig(perturbation_factors=(0.8, 0.0))),
    ("config.algorithm.perturbation_factors", AlgorithmConfig(perturbation_factors=(-1.2,))),
    ("config.algorithm.perturbation_factors", AlgorithmConfig(perturbation_factors=(math.inf,))),
    ("config.algorithm.perturbation_factors", AlgorithmConfig(perturbation_factors=(math.nan,))),
    ("config.algorithm.max_generations", AlgorithmConfig(max_generations=-1)),
    ("config.algorithm.max_trials", AlgorithmConfig(max_trials=-1)),
    ("config.algorithm.steps_per_trial", AlgorithmConfig(steps_per_trial=-1)),
    (
        "config.algorithm.median_stopping.min_completed_trials",
        AlgorithmConfig(median_stopping=MedianStopping(min_completed_trials=0)),
    ),
    (
        "config.algorithm.median_stopping.min_measurements",
        AlgorithmConfig(median_stopping=MedianStopping(min_measurements=0)),
    ),
]


@pytest.mark.parametrize(("prefix", "algorithm"), BAD_ALGORITHMS)
def test_bad_algorithm_settings_are_rejected_naming_the_field(
    prefix: str, algorithm: AlgorithmConfig
) -> None:
    with pytest.raises(ValueError) as err:
        validate_config(config(flt("a"), algorithm=algorithm))
    assert str(err.value).startswith(prefix), str(err.value)


def test_zero_limits_mean_unlimited_and_are_valid() -> None:
    limits = AlgorithmConfig(population_size=2, max_generations=0, max_trials=0, steps_per_trial=0)
    validate_config(config(flt("a"), algorithm=limits))


# --- topological_order / is_active ------------------------------------------------------------


def test_topological_order_keeps_declaration_order_without_conditions() -> None:
    params = (flt("c"), flt("a"), flt("b"))
    assert topological_order(params) == params


def test_topological_order_puts_parents_first_and_is_otherwise_stable() -> None:
    grandchild = when(flt("g"), "child", "on")
    child = when(cat("child", "on", "off"), "root", 2)
    params = (flt("x"), grandchild, child, flt("y"), integer("root", 1, 3), flt("z"))
    assert [p.name for p in topological_order(params)] == ["x", "y", "root", "child", "g", "z"]


def test_topological_order_rejects_a_cycle() -> None:
    with pytest.raises(ValueError, match="cycle"):
        topological_order((when(cat("a", "x"), "b", "x"), when(cat("b", "x"), "a", "x")))


def test_is_active() -> None:
    spec = when(flt("m"), "opt", "sgd", "nesterov")
    assert is_active(flt("free"), {})
    assert not is_active(spec, {})
    assert is_active(spec, {"opt": "sgd"})
    assert is_active(spec, {"opt": "nesterov"})
    assert not is_active(spec, {"opt": "adam"})


def test_is_active_compares_numbers_as_floats() -> None:
    spec = when(flt("w"), "layers", 3.0)
    assert is_active(spec, {"layers": 3})
    assert not is_active(spec, {"layers": 2})
    assert not is_active(spec, {"layers": "3"})
    assert is_active(when(flt("w"), "layers", 3), {"layers": 3.0})


# --- sampling -----------------------------------------------------------------------------------


def test_float_samples_stay_in_bounds_and_cover_the_range() -> None:
    g = rng()
    samples = [sample_value(flt("a", -2.0, 3.0), g) for _ in range(5000)]
    assert all(type(x) is float for x in samples)
    xs = [float(x) for x in samples]
    assert all(-2.0 <= x <= 3.0 for x in xs)
    assert min(xs) < -1.9 and max(xs) > 2.9
    assert abs(float(np.median(xs)) - 0.5) < 0.15


def test_log_float_samples_are_log_uniform() -> None:
    g = rng()
    xs = np.array([sample_value(flt("a", 1e-4, 1.0, Scale.LOG), g) for _ in range(5000)], dtype=float)
    assert np.all((xs >= 1e-4) & (xs <= 1.0))
    assert 0.7e-2 < np.median(xs) < 1.4e-2  # geometric mean 1e-2; a linear sampler gives ~0.5
    per_decade = np.histogram(np.log10(xs), bins=4, range=(-4, 0))[0]
    assert np.all(np.abs(per_decade - 1250) < 150)


def test_integer_samples_are_ints_covering_both_bounds() -> None:
    g = rng()
    xs = [sample_value(integer("a", 1, 3), g) for _ in range(600)]
    assert all(type(x) is int for x in xs)
    assert set(xs) == {1, 2, 3}


def test_discrete_samples_are_floats_from_the_list() -> None:
    g = rng()
    xs = [sample_value(disc("a", 16, 32, 64), g) for _ in range(300)]
    assert all(type(x) is float for x in xs)
    assert set(xs) == {16.0, 32.0, 64.0}


def test_categorical_samples_are_strings_from_the_list() -> None:
    g = rng()
    xs = [sample_value(cat("a", "x", "y", "z"), g) for _ in range(300)]
    assert set(xs) == {"x", "y", "z"}


def test_sample_hparams_leaves_out_inactive_parameters() -> None:
    params = (
        when(flt("momentum"), "opt", "sgd"),
        cat("opt", "sgd", "adam"),
        when(flt("nesterov_eps"), "momentum_kind", "nesterov"),
        when(cat("momentum_kind", "plain", "nesterov"), "opt", "sgd"),
    )
    seen_opts = set()
    for seed in range(200):
        h = sample_hparams(params, rng(seed))
        seen_opts.add(h["opt"])
        if h["opt"] == "adam":
            assert set(h) == {"opt"}
        else:
            assert {"opt", "momentum", "momentum_kind"} <= set(h)
            assert ("nesterov_eps" in h) == (h["momentum_kind"] == "nesterov")
    assert seen_opts == {"sgd", "adam"}


def test_sample_hparams_is_reproducible() -> None:
    params = (flt("lr", 1e-4, 1.0, Scale.LOG), integer("n"), cat("opt", "a", "b"))
    assert sample_hparams(params, rng(3)) == sample_hparams(params, rng(3))
    assert sample_hparams(params, rng(3)) != sample_hparams(params, rng(4))
