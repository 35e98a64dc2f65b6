"""The explore step: resampling from the prior, PB2's GP bandit, and every proposal staying in the
search space whatever the selection and explore settings."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbt_service.core import pb2
from pbt_service.core.evolution import next_trial
from pbt_service.core.exploration import explore, from_unit, improvement_per_step, to_unit
from pbt_service.core.search_space import is_active, pb2_parameters, sample_hparams, topological_order, validate_config
from pbt_service.core.types import (
    AlgorithmConfig,
    Condition,
    ExploreConfig,
    ExploreStrategy,
    LineageRecord,
    Measurement,
    Objective,
    OpponentStrategy,
    ParameterSpec,
    ParameterType,
    ParamValue,
    PopulationView,
    Scale,
    SelectionConfig,
    SelectionScore,
    SelectionStrategy,
    StudyConfig,
    Trial,
    TrialStatus,
)

ACC = (Objective("acc"),)
LR = ParameterSpec("lr", ParameterType.FLOAT, low=1e-4, high=1.0, scale=Scale.LOG)
WIDTH = ParameterSpec("width", ParameterType.INTEGER, low=1, high=64)
DROP = ParameterSpec("drop", ParameterType.DISCRETE, values=(0.0, 0.1, 0.2, 0.5))
OPT = ParameterSpec("opt", ParameterType.CATEGORICAL, values=("sgd", "adam", "rmsprop"))
MOMENTUM = ParameterSpec("momentum", ParameterType.FLOAT, low=0.0, high=0.99, condition=Condition("opt", ("sgd",)))
SEED = ParameterSpec("seed", ParameterType.FLOAT, low=0.0, high=10.0, frozen=True)
SPACE = (LR, WIDTH, DROP, OPT, MOMENTUM, SEED)
PARENT: dict[str, ParamValue] = {"lr": 1e-2, "width": 16, "drop": 0.1, "opt": "sgd", "momentum": 0.5, "seed": 3.0}


def study(
    strategy: ExploreStrategy, parameters: tuple[ParameterSpec, ...] = SPACE, **explore_settings: object
) -> StudyConfig:
    algorithm = AlgorithmConfig(population_size=4, explore=ExploreConfig(strategy, **explore_settings))  # type: ignore[arg-type]
    return StudyConfig(parameters, ACC, algorithm=algorithm)


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def observed(id: int, hparams: Mapping[str, ParamValue], gain_per_step: float, step: int = 200) -> Trial:
    """A completed child that gained `gain_per_step` over its interval of 100 steps."""
    return Trial(
        id=id,
        study="s",
        number=id,
        generation=step // 100 - 1,
        status=TrialStatus.COMPLETED,
        hparams=dict(hparams),
        final_measurement=Measurement(step, {"acc": 1.0 + 100 * gain_per_step}, f"/ckpt/{id}"),
        lineage=LineageRecord(history=((step - 100, (1.0,)),)),
    )


def in_bounds(spec: ParameterSpec, value: ParamValue) -> bool:
    if spec.type is ParameterType.FLOAT:
        return type(value) is float and spec.low <= value <= spec.high
    if spec.type is ParameterType.INTEGER:
        return type(value) is int and spec.low <= value <= spec.high
    if spec.type is ParameterType.DISCRETE:
        return type(value) is float and value in spec.values
    return type(value) is str and value in spec.values


def assert_in_space(parameters: Sequence[ParameterSpec], hparams: Mapping[str, ParamValue]) -> None:
    """Every active parameter present with a legal value, nothing else."""
    active = {p.name for p in topological_order(parameters) if is_active(p, hparams)}
    assert set(hparams) == active, (hparams, active)
    for p in parameters:
        if p.name in hparams:
            assert in_bounds(p, hparams[p.name]), (p.name, hparams[p.name])


# --- unit cube -----------------------------------------------------------------------------------


def test_unit_cube_of_a_log_scaled_float_is_in_log_space() -> None:
    assert to_unit(LR, 1e-2) == pytest.approx(0.5)
    assert from_unit(LR, 0.25) == pytest.approx(1e-3)
    assert from_unit(LR, 0.0) == pytest.approx(1e-4) and from_unit(LR, 1.0) == pytest.approx(1.0)


def test_unit_cube_of_a_linear_float_and_an_integer() -> None:
    assert to_unit(MOMENTUM, 0.495) == pytest.approx(0.5)
    assert from_unit(WIDTH, 0.5) == 32 and type(from_unit(WIDTH, 0.5)) is int
    assert from_unit(WIDTH, to_unit(WIDTH, 17)) == 17
    assert all(1 <= int(from_unit(WIDTH, u)) <= 64 for u in np.linspace(0, 1, 101))


def test_unit_cube_clips_out_of_range_values() -> None:
    assert to_unit(LR, 5.0) == 1.0 and to_unit(LR, 1e-9) == 0.0
    assert from_unit(LR, 1.5) == 1.0 and from_unit(WIDTH, -0.2) == 1


def test_pb2_tunes_only_floats_and_integers_that_are_not_frozen() -> None:
    assert [p.name for p in pb2_parameters(SPACE)] == ["lr", "width", "momentum"]


def test_improvement_per_step_of_a_child_and_of_a_fresh_line() -> None:
    cfg = study(ExploreStrategy.PB2)
    assert improvement_per_step(observed(1, PARENT, 0.02), cfg) == pytest.approx(0.02)
    fresh = Trial(1, "s", 1, 0, TrialStatus.COMPLETED, PARENT, final_measurement=Measurement(100, {"acc": 5.0}))
    assert improvement_per_step(fresh, cfg) is None
    diverged = Trial(
        1, "s", 1, 1, TrialStatus.COMPLETED, PARENT,
        final_measurement=Measurement(200, {"acc": math.nan}), lineage=LineageRecord(((100, (1.0,)),)),
    )  # fmt: skip
    assert improvement_per_step(diverged, cfg) is None


# --- resample ------------------------------------------------------------------------------------


def test_resample_with_probability_one_redraws_every_free_value_from_its_prior() -> None:
    cfg = study(ExploreStrategy.RESAMPLE, resample_probability=1.0)
    children = [explore(cfg, PARENT, (), rng(s)) for s in range(300)]
    for child in children:
        assert_in_space(SPACE, child)
        assert child["seed"] == 3.0  # frozen: kept
    lrs = [float(c["lr"]) for c in children]
    assert not any(math.isclose(lr, 0.01 * f) for lr in lrs for f in (0.8, 1.2))  # never a perturbation
    assert min(lrs) < 1e-3 and max(lrs) > 1e-1  # the whole log-uniform prior, not a neighbourhood of 0.01
    assert {c["drop"] for c in children} == set(DROP.values)  # not only the neighbours 0.0 and 0.2
    assert len({c["width"] for c in children}) > 40


def test_resample_probability_draws_are_deterministic_by_seed_and_mix_both_moves() -> None:
    cfg = study(ExploreStrategy.RESAMPLE, resample_probability=0.5)
    assert all(explore(cfg, PARENT, (), rng(s)) == explore(cfg, PARENT, (), rng(s)) for s in range(50))
    perturbed = [
        any(math.isclose(float(c["lr"]), 0.01 * f) for f in (0.8, 1.2))
        for c in (explore(cfg, PARENT, (), rng(s)) for s in range(400))
    ]
    assert 120 < sum(perturbed) < 280  # about half the lr values perturbed, the rest redrawn


def test_perturb_never_resamples_whatever_the_probability_setting() -> None:
    cfg = study(ExploreStrategy.PERTURB, resample_probability=1.0)
    lrs = {explore(cfg, PARENT, (), rng(s))["lr"] for s in range(100)}
    assert lrs == {0.01 * 0.8, 0.01 * 1.2}


# --- PB2 -----------------------------------------------------------------------------------------


def rising_history(n: int = 24, seed: int = 0) -> list[Trial]:
    """Observations whose improvement rises with log10(lr); the other parameters are noise."""
    r = rng(seed)
    trials = []
    for i in range(n):
        lr = float(10 ** r.uniform(-4, 0))
        hparams = {**PARENT, "lr": lr, "width": int(r.integers(1, 65)), "momentum": float(r.uniform(0, 0.99))}
        trials.append(observed(i + 1, hparams, (math.log10(lr) + 4) / 400, step=100 * (2 + i % 4)))
    return trials


def test_pb2_proposes_a_larger_learning_rate_when_improvement_rises_with_it() -> None:
    cfg = study(ExploreStrategy.PB2)
    parent = {**PARENT, "lr": 1e-3}
    larger = sum(float(explore(cfg, parent, rising_history(seed=s), rng(s))["lr"]) > 1e-3 for s in range(10))
    assert larger >= 8


def test_pb2_values_stay_in_bounds_with_integers_rounded_and_others_perturbed() -> None:
    cfg = study(ExploreStrategy.PB2)
    history = rising_history()
    children = [explore(cfg, PARENT, history, rng(s)) for s in range(20)]
    for child in children:
        assert_in_space(SPACE, child)
        assert child["seed"] == 3.0
        assert child["drop"] in (0.0, 0.2)  # discrete: a neighbour of 0.1
    lrs = [float(c["lr"]) for c in children]
    assert not all(any(math.isclose(lr, 0.01 * f) for f in (0.8, 1.2)) for lr in lrs)  # the GP chose them
    assert {c["opt"] for c in children} <= set(OPT.values) and len({c["opt"] for c in children}) > 1


def test_pb2_with_too_few_observations_falls_back_to_perturbation() -> None:
    cfg = study(ExploreStrategy.PB2)
    usable = rising_history(2)
    start = Measurement(100, {"acc": 1.0})
    fresh = [Trial(90 + i, "s", 90 + i, 0, TrialStatus.COMPLETED, PARENT, final_measurement=start) for i in range(10)]
    lrs = {explore(cfg, PARENT, [*usable, *fresh], rng(s))["lr"] for s in range(50)}
    assert lrs == {0.01 * 0.8, 0.01 * 1.2}


def test_pb2_ignores_observations_beyond_max_points() -> None:
    cfg = study(ExploreStrategy.PB2, pb2_max_points=3)
    few = rising_history(2)
    padded = [*few, *rising_history(20, seed=1)]  # only the first 3 (2 + 1) may count
    assert explore(cfg, PARENT, padded, rng(0)) == explore(cfg, PARENT, [*few, padded[2]], rng(0))


def test_pb2_is_deterministic_for_the_same_generator_seed() -> None:
    cfg = study(ExploreStrategy.PB2)
    history = rising_history()
    assert explore(cfg, PARENT, history, rng(7)) == explore(cfg, PARENT, history, rng(7))
    assert len({repr(explore(cfg, PARENT, history, rng(s))) for s in range(5)}) > 1


def test_pb2_skips_an_inactive_conditional_parameter() -> None:
    cfg = study(ExploreStrategy.PB2)
    parent = {k: v for k, v in PARENT.items() if k != "momentum"} | {"opt": "adam"}
    history = [observed(t.id, {**t.hparams, "opt": "adam"}, 0.001) for t in rising_history()]
    for s in range(20):
        assert_in_space(SPACE, explore(cfg, parent, history, rng(s)))


def test_pb2_propose_needs_three_observations_of_matching_shapes() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        pb2.propose(np.zeros(2), np.zeros((2, 1)), np.zeros(2), np.zeros(1), rng(0))
    with pytest.raises(ValueError):
        pb2.propose(np.zeros(4), np.zeros((4, 2)), np.zeros(4), np.zeros(3), rng(0))


def test_pb2_propose_returns_a_point_of_the_unit_cube_even_with_flat_data() -> None:
    r = rng(0)
    best = pb2.propose(np.full(5, 3.0), r.random((5, 3)), np.zeros(5), np.full(3, 0.5), r)
    assert best.shape == (3,) and np.all((best >= 0) & (best <= 1))


# --- every proposal stays in the search space ----------------------------------------------------

SELECTIONS = st.builds(
    SelectionConfig,
    strategy=st.sampled_from(SelectionStrategy),
    truncation_quantile=st.sampled_from([0.01, 0.25, 0.5]),
    opponents=st.sampled_from(OpponentStrategy),
    score=st.sampled_from(SelectionScore),
    score_window=st.integers(1, 16),
    burn_in_steps=st.integers(0, 400),
    ready_steps=st.integers(0, 400),
    ready_generations=st.integers(1, 3),
).filter(lambda s: s.score is not SelectionScore.IMPROVEMENT or s.score_window >= 2)  # validation refuses 1
EXPLORES = st.builds(
    ExploreConfig,
    strategy=st.sampled_from(ExploreStrategy),
    resample_probability=st.floats(1e-3, 1.0),
    pb2_max_points=st.integers(3, 32),
)
ACCS = st.one_of(st.floats(-100, 100), st.just(math.nan), st.just(math.inf))


@st.composite
def members(draw: st.DrawFn, index: int) -> Trial:
    """A completed trial with in-space hyperparameters and a random lineage."""
    hparams = sample_hparams(SPACE, rng(draw(st.integers(0, 2**32 - 1))))
    generation = draw(st.integers(0, 5))
    step = draw(st.integers(1, 600))
    ancestors = draw(st.lists(st.tuples(st.integers(0, step - 1), st.floats(-100, 100)), max_size=3))
    lineage = LineageRecord(
        history=tuple(sorted((s, (a,)) for s, a in ancestors)),
        exploit_step=draw(st.integers(0, step)),
        exploit_generation=draw(st.integers(0, generation + 1)),
        best=draw(st.none() | st.floats(-100, 100).map(lambda a: (a,))),
        best_generation=draw(st.integers(0, generation)),
    )
    return Trial(
        id=index + 1,
        study="s",
        number=index,
        generation=generation,
        status=TrialStatus.COMPLETED,
        hparams=hparams,
        final_measurement=Measurement(step, {"acc": draw(ACCS)}, f"/ckpt/{index + 1}"),
        lineage=lineage,
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    SELECTIONS,
    EXPLORES,
    st.integers(0, 3),
    st.integers(0, 100),
    st.integers(1, 10).flatmap(lambda n: st.tuples(*[members(i) for i in range(n)])),
    st.integers(0, 2**32 - 1),
)
def test_every_proposal_stays_in_the_search_space(
    selection: SelectionConfig,
    explore_config: ExploreConfig,
    rejuvenate: int,
    steps_per_trial: int,
    population: tuple[Trial, ...],
    seed: int,
) -> None:
    config = StudyConfig(
        SPACE,
        ACC,
        algorithm=AlgorithmConfig(
            population_size=2,
            steps_per_trial=steps_per_trial,
            selection=selection,
            explore=explore_config,
            rejuvenate_after_generations=rejuvenate,
        ),
    )
    validate_config(config)
    initiator, opponents = population[0], population[1:]
    view = PopulationView(2, 2, initiator, 2, opponents, history=population)
    proposal = next_trial(config, view, rng(seed))
    assert proposal is not None and proposal.generation == initiator.generation + 1
    assert_in_space(SPACE, proposal.hparams)
    assert proposal.steps >= steps_per_trial
    if proposal.parent_trial_id is None:
        assert proposal.warm_start_checkpoint_path == ""
        return
    parent = next(t for t in population if t.id == proposal.parent_trial_id)
    assert parent.final_measurement is not None and math.isfinite(parent.final_measurement.metrics["acc"])
    assert proposal.warm_start_checkpoint_path == parent.final_measurement.checkpoint_path
    assert proposal.hparams["seed"] == parent.hparams["seed"]  # frozen
    if steps_per_trial:
        assert proposal.steps == max(
            steps_per_trial, (proposal.generation + 1) * steps_per_trial - parent.final_measurement.step
        )
