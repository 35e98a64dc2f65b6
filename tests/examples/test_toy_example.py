"""The toy problem of Jaderberg et al. 2017 run without the service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from examples import toy
from pbt_service.core.search_space import validate_config
from worker_client.context import checkpoint_step

INITIAL_Q = 1.2 - 2 * 0.9**2
RunTrial = Callable[..., Any]  # the stand-in loop of conftest.py


def test_study_config_is_valid() -> None:
    config = toy.study_config(population_size=2, max_generations=5)
    validate_config(config)
    assert [p.name for p in config.parameters] == ["h0", "h1"]
    assert config.objectives[0].metric == "Q"


def test_gradient_ascent_improves_q_and_resumes_the_step_count(run_trial: RunTrial) -> None:
    values, warm = [], None
    for _ in range(5):
        outcome = run_trial(toy.train, toy.evaluate, {"h0": 1.0, "h1": 1.0}, steps=4, warm_start=warm)
        values.append(outcome.final_metrics["Q"])
        warm = outcome.final_checkpoint
    assert warm is not None
    assert checkpoint_step(warm) == 20
    assert INITIAL_Q < values[0] and values == sorted(values) and len(set(values)) == 5
    assert values[-1] == pytest.approx(1.2 - 2 * (0.9 * 0.98**20) ** 2)


def test_zero_h_leaves_theta_where_it_is(run_trial: RunTrial) -> None:
    outcome = run_trial(toy.train, toy.evaluate, {"h0": 0.0, "h1": 0.0}, steps=4)
    assert outcome.final_metrics["Q"] == pytest.approx(INITIAL_Q)


def test_exploit_lets_two_one_sided_members_beat_either_alone(run_trial: RunTrial) -> None:
    """The paper's figure: h=(1,0) and h=(0,1) each stall at Q≈0.39; copying θ from the better
    member every 4 steps (exploit, no explore) drives both coordinates toward 0 in as many steps."""
    hparams = [{"h0": 1.0, "h1": 0.0}, {"h0": 0.0, "h1": 1.0}]
    alone = [run_trial(toy.train, toy.evaluate, h, steps=160).final_metrics["Q"] for h in hparams]

    warm = [None, None]
    best = INITIAL_Q
    for _ in range(40):
        outcomes = [
            run_trial(toy.train, toy.evaluate, h, steps=4, warm_start=w) for h, w in zip(hparams, warm, strict=True)
        ]
        scores = [o.final_metrics["Q"] for o in outcomes]
        winner = outcomes[scores.index(max(scores))].final_checkpoint
        warm = [winner, winner]
        best = max(best, *scores)

    assert max(alone) < 0.4
    assert best > 1.0
