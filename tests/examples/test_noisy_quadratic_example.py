"""The noisy quadratic run without the service: learning, divergence and reproducible noise."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from examples import noisy_quadratic
from examples.noisy_quadratic import NoisyQuadratic
from pbt_service.core.search_space import validate_config
from worker_client.context import checkpoint_step

RunTrial = Callable[..., Any]  # the stand-in loop of conftest.py
PROBLEM = NoisyQuadratic(seed=3)
INITIAL_LOSS = PROBLEM.loss(np.ones(20))


def lineage(run_trial: RunTrial, learning_rate: float, trials: int, problem: NoisyQuadratic = PROBLEM) -> list[Any]:
    outcomes, warm = [], None
    for _ in range(trials):
        outcome = run_trial(problem.train, problem.evaluate, {"learning_rate": learning_rate}, 10, warm)
        outcomes.append(outcome)
        warm = outcome.final_checkpoint
    return outcomes


def test_study_config_is_valid() -> None:
    config = noisy_quadratic.study_config()
    validate_config(config)
    assert config.algorithm.steps_per_trial == 10
    [spec] = config.parameters
    assert (spec.name, spec.low, spec.high, spec.scale.value) == ("learning_rate", 1e-4, 1.0, "log")


def test_curvatures_span_one_to_a_hundred() -> None:
    c = PROBLEM.curvatures
    assert len(c) == 20 and c[0] == 1.0 and math.isclose(c[-1], 100.0)
    assert np.allclose(np.diff(np.log(c)), np.log(100) / 19)


def test_sensible_learning_rate_decreases_the_loss_and_resumes_steps(run_trial: RunTrial) -> None:
    outcomes = lineage(run_trial, 0.01, trials=10)
    losses = [o.final_metrics["loss"] for o in outcomes]
    assert [checkpoint_step(o.final_checkpoint) for o in outcomes] == list(range(10, 101, 10))
    assert losses[0] < INITIAL_LOSS
    assert losses[-1] < 0.1 * INITIAL_LOSS


def test_too_large_learning_rate_diverges_and_is_reported_as_is(run_trial: RunTrial) -> None:
    losses = [o.final_metrics["loss"] for o in lineage(run_trial, 1.0, trials=20)]
    assert losses[0] > INITIAL_LOSS
    assert not math.isfinite(losses[-1])
    first_bad = next(i for i, v in enumerate(losses) if not math.isfinite(v))
    assert all(not math.isfinite(v) for v in losses[first_bad:])


def test_noise_depends_on_seed_and_trial_not_on_the_run(run_trial: RunTrial) -> None:
    def final_loss(problem: NoisyQuadratic, trial_id: int) -> float:
        outcome = run_trial(problem.train, problem.evaluate, {"learning_rate": 0.01}, 10, None, trial_id)
        return float(outcome.final_metrics["loss"])

    assert final_loss(PROBLEM, 5) == final_loss(PROBLEM, 5)
    assert final_loss(PROBLEM, 5) != final_loss(PROBLEM, 6)
    assert final_loss(PROBLEM, 5) != final_loss(NoisyQuadratic(seed=4), 5)


def test_module_level_trainer_uses_the_default_problem(run_trial: RunTrial) -> None:
    outcome = run_trial(noisy_quadratic.train, noisy_quadratic.evaluate, {"learning_rate": 0.01}, 10)
    assert outcome.final_metrics["loss"] < INITIAL_LOSS
