"""Mutation per paper section 3.5.2."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pbt_service.core.mutation import mutate_hparams, mutate_value
from pbt_service.core.types import Condition, ParameterSpec, ParameterType, ParamValue, Scale

FACTORS = (0.8, 1.2)
SEEDS = range(200)


def flt(low: float = 0.0, high: float = 1.0, scale: Scale = Scale.LINEAR, name: str = "x") -> ParameterSpec:
    return ParameterSpec(name, ParameterType.FLOAT, low=low, high=high, scale=scale)


def integer(low: int, high: int, name: str = "n") -> ParameterSpec:
    return ParameterSpec(name, ParameterType.INTEGER, low=low, high=high)


def disc(*values: float) -> ParameterSpec:
    return ParameterSpec("d", ParameterType.DISCRETE, values=values)


def cat(*values: str, name: str = "c") -> ParameterSpec:
    return ParameterSpec(name, ParameterType.CATEGORICAL, values=values)


def outcomes(spec: ParameterSpec, value: ParamValue, factors: tuple[float, ...] = FACTORS) -> set[ParamValue]:
    return {mutate_value(spec, value, factors, np.random.default_rng(s)) for s in SEEDS}


# --- float ---------------------------------------------------------------------------------------


def test_float_is_multiplied_by_exactly_one_of_the_factors() -> None:
    assert outcomes(flt(), 0.5) == {0.5 * 0.8, 0.5 * 1.2}
    assert outcomes(flt(1e-5, 1.0, Scale.LOG), 0.01) == {0.01 * 0.8, 0.01 * 1.2}


def test_float_uses_the_configured_factors() -> None:
    assert outcomes(flt(), 0.5, (0.5, 1.5, 2.0)) == {0.25, 0.75, 1.0}


def test_float_is_clipped_to_the_bounds() -> None:
    assert outcomes(flt(0.1, 1.0), 0.9, (1.2,)) == {1.0}
    assert outcomes(flt(0.1, 1.0), 0.11, (0.8,)) == {0.1}


def test_float_result_is_a_float() -> None:
    assert all(type(v) is float for v in outcomes(flt(0.0, 10.0), 2))


# --- integer -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "factor", "expected"),
    [
        (10, 1.2, 12),
        (10, 0.8, 8),
        (1, 1.2, 2),  # round(1.2) == 1: forced up
        (1, 0.8, 0),  # round(0.8) == 1: forced down
        (2, 1.2, 3),  # round(2.4) == 2: forced up
        (2, 0.8, 1),  # round(1.6) == 2: forced down
        (0, 1.2, 1),
        (0, 0.8, -1),
        (-5, 1.2, -6),
        (-5, 0.8, -4),
        (18, 1.2, 20),  # 22 clipped to the bound
        (20, 1.2, 19),  # 24 clipped back to 20: bounced off the bound
        (-20, 1.2, -19),
    ],
)
def test_integer_is_scaled_rounded_and_always_moved(value: int, factor: float, expected: int) -> None:
    assert outcomes(integer(-20, 20), value, (factor,)) == {expected}


def test_integer_at_a_bound_moves_the_other_way() -> None:
    assert outcomes(integer(1, 5), 5, (1.2,)) == {4}
    assert outcomes(integer(1, 5), 1, (0.8,)) == {2}
    assert outcomes(integer(0, 5), 0, (0.8,)) == {1}
    assert outcomes(integer(0, 1), 1, (1.2,)) == {0}
    assert outcomes(integer(0, 1), 0, (0.8,)) == {1}


def test_integer_always_moves_stays_in_bounds_and_stays_int() -> None:
    for low, high in [(0, 1), (1, 2), (1, 3), (-3, 3), (1, 100)]:
        for value in range(low, high + 1):
            for v in outcomes(integer(low, high), value):
                assert type(v) is int and low <= v <= high and v != value, (low, high, value, v)


def test_integer_uses_both_factors() -> None:
    assert outcomes(integer(1, 100), 50) == {40, 60}


# --- discrete ------------------------------------------------------------------------------------


def test_discrete_moves_to_a_neighbour_chosen_uniformly() -> None:
    spec = disc(1, 2, 4, 8)
    picks = [mutate_value(spec, 2.0, FACTORS, np.random.default_rng(s)) for s in range(2000)]
    assert set(picks) == {1.0, 4.0}
    assert 850 < picks.count(1.0) < 1150


def test_discrete_at_the_ends_has_one_neighbour() -> None:
    assert outcomes(disc(1, 2, 4, 8), 1.0) == {2.0}
    assert outcomes(disc(1, 2, 4, 8), 8.0) == {4.0}
    assert outcomes(disc(1, 2), 2) == {1.0}


def test_discrete_off_the_list_snaps_to_the_nearest_then_moves() -> None:
    assert outcomes(disc(1, 2, 4, 8), 3.9) == {2.0, 8.0}
    assert outcomes(disc(1, 2, 4, 8), 2.1) == {1.0, 4.0}
    assert outcomes(disc(1, 2, 4, 8), 100.0) == {4.0}


def test_discrete_result_is_a_float() -> None:
    assert all(type(v) is float for v in outcomes(disc(1, 2, 4), 2))


# --- categorical ---------------------------------------------------------------------------------


def test_categorical_is_resampled_over_all_values_including_the_current() -> None:
    assert outcomes(cat("a", "b", "c"), "b") == {"a", "b", "c"}
    assert outcomes(cat("only"), "only") == {"only"}


# --- mutate_hparams ------------------------------------------------------------------------------


def test_every_non_frozen_parameter_is_mutated_and_frozen_ones_are_copied() -> None:
    params = (
        flt(name="lr"),
        replace(flt(name="wd"), frozen=True),
        replace(integer(1, 100, name="layers"), frozen=True),
        replace(cat("a", "b", "c", "d", name="arch"), frozen=True),
        integer(1, 100, name="units"),
    )
    parent: dict[str, ParamValue] = {"lr": 0.5, "wd": 0.5, "layers": 50, "arch": "c", "units": 50}
    for seed in SEEDS:
        child = mutate_hparams(params, parent, FACTORS, np.random.default_rng(seed))
        assert child["lr"] in (0.5 * 0.8, 0.5 * 1.2)
        assert child["units"] in (40, 60)
        assert (child["wd"], child["layers"], child["arch"]) == (0.5, 50, "c")
    assert parent == {"lr": 0.5, "wd": 0.5, "layers": 50, "arch": "c", "units": 50}


OPT = cat("sgd", "adam", name="opt")
MOMENTUM = replace(flt(0.0, 1.0, name="momentum"), condition=Condition("opt", ("sgd",)))


def test_parameter_switched_off_by_the_new_parent_value_is_dropped() -> None:
    kinds = set()
    for seed in SEEDS:
        child = mutate_hparams(
            (MOMENTUM, OPT), {"opt": "sgd", "momentum": 0.5}, FACTORS, np.random.default_rng(seed)
        )
        kinds.add(child["opt"])
        if child["opt"] == "adam":
            assert set(child) == {"opt"}
        else:
            assert child["momentum"] in (0.5 * 0.8, 0.5 * 1.2)
    assert kinds == {"sgd", "adam"}


@pytest.mark.parametrize("frozen", [False, True])
def test_parameter_switched_on_is_sampled_fresh(frozen: bool) -> None:
    momentum = replace(MOMENTUM, frozen=frozen)
    fresh = []
    for seed in SEEDS:
        child = mutate_hparams((OPT, momentum), {"opt": "adam"}, FACTORS, np.random.default_rng(seed))
        if child["opt"] == "sgd":
            assert 0.0 <= float(child["momentum"]) <= 1.0
            fresh.append(child["momentum"])
        else:
            assert "momentum" not in child
    assert len(set(fresh)) > 20  # sampled across the range, not a fixed default


def test_stale_inactive_value_in_the_parent_is_dropped() -> None:
    for seed in range(50):
        child = mutate_hparams(
            (OPT, MOMENTUM), {"opt": "adam", "momentum": 0.5}, FACTORS, np.random.default_rng(seed)
        )
        assert ("momentum" in child) == (child["opt"] == "sgd")
        if child["opt"] == "sgd":
            break
    else:
        pytest.fail("opt never became sgd")


def test_mutate_hparams_is_reproducible() -> None:
    params = (OPT, MOMENTUM, integer(1, 100, name="units"))
    parent: dict[str, ParamValue] = {"opt": "sgd", "momentum": 0.5, "units": 50}
    a = mutate_hparams(params, parent, FACTORS, np.random.default_rng(7))
    assert a == mutate_hparams(params, parent, FACTORS, np.random.default_rng(7))
