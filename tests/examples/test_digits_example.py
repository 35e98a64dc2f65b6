"""The digits MLP run without the service: learning, warm starts across widths, metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from examples import digits  # noqa: E402
from examples.digits.data import digits as digits_data  # noqa: E402
from pbt_service.core.search_space import validate_config  # noqa: E402
from worker_client import Goal, Objective  # noqa: E402
from worker_client.context import checkpoint_step  # noqa: E402
from worker_client.torch_checkpoint import partial_restore  # noqa: E402

RunTrial = Callable[..., Any]  # the stand-in loop of conftest.py
ADAM = {"learning_rate": 0.01, "optimizer": "adam", "hidden_units": 64.0}


def test_study_config_is_valid_and_momentum_is_conditional() -> None:
    config = digits.study_config()
    validate_config(config)
    by_name = {p.name: p for p in config.parameters}
    assert by_name["momentum"].condition is not None
    assert by_name["momentum"].condition.values == ("sgd",)
    assert config.objectives == (Objective("loss", Goal.MINIMIZE),)  # continuous: no saturation, no ties


def test_splits_are_disjoint_fixed_and_cover_the_data() -> None:
    data = digits_data(0)
    sizes = [len(s.labels) for s in (data.train, data.validation, data.test)]
    assert sum(sizes) == 1797 and min(sizes) >= 300
    rows = {tuple(x.tolist()) for x in data.test.features}
    assert not rows & {tuple(x.tolist()) for x in data.validation.features[:50]}
    assert digits_data(0) is data


def test_warm_started_trials_reach_high_validation_accuracy(run_trial: RunTrial) -> None:
    warm, accuracies = None, []
    for _ in range(3):
        outcome = run_trial(digits.train, digits.evaluate, ADAM, steps=100, warm_start=warm)
        accuracies.append(outcome.final_metrics["accuracy"])
        warm = outcome.final_checkpoint
    assert warm is not None
    assert checkpoint_step(warm) == 300
    assert accuracies[-1] > 0.8
    assert set(outcome.final_metrics) == {"accuracy", "loss", "test_accuracy"}
    assert 0.0 <= outcome.final_metrics["test_accuracy"] <= 1.0


def test_training_noise_is_seeded_and_can_be_turned_off(run_trial: RunTrial) -> None:
    noisy = [run_trial(digits.train, digits.evaluate, ADAM, steps=20, trial_id=7) for _ in range(2)]
    clean = digits.DigitsMLP(input_noise=0.0)
    plain = run_trial(clean.train, clean.evaluate, ADAM, steps=20, trial_id=7)
    assert digits.DigitsMLP().input_noise > 0
    assert noisy[0].final_metrics == noisy[1].final_metrics != plain.final_metrics


def test_untrained_model_is_near_chance(run_trial: RunTrial) -> None:
    outcome = run_trial(digits.train, digits.evaluate, {**ADAM, "learning_rate": 1e-4}, steps=1)
    assert outcome.final_metrics["accuracy"] < 0.5


def test_child_with_another_width_inherits_the_layers_that_fit(run_trial: RunTrial) -> None:
    parent = run_trial(digits.train, digits.evaluate, ADAM, steps=100)
    child_hparams = {"learning_rate": 0.05, "optimizer": "sgd", "momentum": 0.9, "hidden_units": 32.0}
    child = run_trial(digits.train, digits.evaluate, child_hparams, steps=100, warm_start=parent.final_checkpoint)

    assert checkpoint_step(child.final_checkpoint) == 200
    report = partial_restore(parent.final_checkpoint, digits.build_model(32))
    assert report.loaded == ("2.bias", "4.weight", "4.bias")
    assert report.shape_mismatch == ("0.weight", "0.bias", "2.weight")
    assert child.final_metrics["accuracy"] > 0.5


def test_same_trial_is_reproducible(run_trial: RunTrial) -> None:
    first = run_trial(digits.train, digits.evaluate, ADAM, steps=20, trial_id=7)
    second = run_trial(digits.train, digits.evaluate, ADAM, steps=20, trial_id=7)
    other = run_trial(digits.train, digits.evaluate, ADAM, steps=20, trial_id=8)
    assert first.final_metrics == second.final_metrics
    assert first.final_metrics != other.final_metrics


def test_frozen_names_freeze_exactly_those_parameters() -> None:
    config = digits.study_config(frozen=("hidden_units", "optimizer"))
    validate_config(config)
    assert {p.name for p in config.parameters if p.frozen} == {"hidden_units", "optimizer"}
    assert {p.name for p in digits.study_config().parameters if p.frozen} == {"hidden_units", "optimizer"}
    assert not any(p.frozen for p in digits.study_config(frozen=()).parameters)
    with pytest.raises(ValueError, match="width"):
        digits.study_config(frozen=("width",))
