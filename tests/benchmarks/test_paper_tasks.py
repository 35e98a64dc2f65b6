"""The benchmark tasks of `benchmarks/paper/tasks`: the `Task` contract for each (round trips,
determinism, step counts, metrics), the exact expected loss of the quadratics against simulated
SGD, the hard task's design claims, and the Pareto hypervolume."""

from __future__ import annotations

import math
import os
import pickle
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.paper.tasks.base import Task
from benchmarks.paper.tasks.digits import DigitsTask
from benchmarks.paper.tasks.hard_quadratic import HardQuadraticTask
from benchmarks.paper.tasks.noisy_quadratic import NoisyQuadraticTask
from benchmarks.paper.tasks.pareto import hypervolume, pareto_front
from benchmarks.paper.tasks.quadratic import expected_loss, second_moments
from benchmarks.paper.tasks.registry import TASKS, UnknownTaskError, get
from benchmarks.paper.tasks.two_objective import TwoObjectiveTask
from benchmarks.paper.tasks.wavenet import WaveNetTask
from worker_client import Comparison, Goal, ParamValue

HPARAMS: dict[str, dict[str, ParamValue]] = {
    "noisy_quadratic": {"learning_rate": 0.01},
    "two_objective": {"learning_rate": 0.1, "weight": 0.3},
    "hard_quadratic": {"learning_rate": 0.5},
    "digits": {"learning_rate": 0.01, "optimizer": "sgd", "momentum": 0.9, "hidden_units": 32.0},
    "wavenet": {"learning_rate": 3e-3},
}
STEPS = {"noisy_quadratic": 20, "two_objective": 20, "hard_quadratic": 50, "digits": 10, "wavenet": 2}


@pytest.fixture(scope="module")
def wavenet_task(tmp_path_factory: pytest.TempPathFactory) -> WaveNetTask:
    """The WaveNet task on speech made once for this module (about a second with espeak-ng)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (bash examples/wavenet/setup.sh)")
    task = WaveNetTask(data_dir=str(tmp_path_factory.mktemp("speech")))
    task.speech()
    return task


@pytest.fixture(params=list(TASKS))
def task(request: pytest.FixtureRequest) -> Iterator[Task]:
    name: str = request.param
    yield request.getfixturevalue("wavenet_task") if name == "wavenet" else TASKS[name]


def trained(task: Task, seed: int = 1, steps: int | None = None) -> Any:
    hparams = HPARAMS[task.name]
    return task.train(task.init(hparams, seed), hparams, STEPS[task.name] if steps is None else steps, seed)


def same_metrics(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return a.keys() == b.keys() and all(np.isclose(a[k], b[k], rtol=0, atol=0, equal_nan=True) for k in a)


def test_the_registry_lists_the_cheap_tasks_first_and_names_the_known_ones_on_a_miss() -> None:
    assert list(TASKS) == ["noisy_quadratic", "two_objective", "hard_quadratic", "digits", "wavenet"]
    assert all(get(name).name == name for name in TASKS)
    with pytest.raises(UnknownTaskError, match="noisy_quadratic"):
        get("mnist")


def test_each_task_declares_its_space_objectives_and_budgets(task: Task) -> None:
    assert task.parameters and task.objectives
    assert (task.comparison is Comparison.PARETO) == (task.name == "two_objective")
    full, quick = task.budget(False), task.budget(True)
    assert full.members == 5 and 10 <= full.intervals <= 40
    assert quick.total_steps < full.total_steps
    assert pickle.loads(pickle.dumps(task)) == task


def test_save_and_load_round_trip_the_state_exactly(task: Task, tmp_path: Path) -> None:
    state = trained(task)
    task.save(state, tmp_path / "state")
    loaded = task.load(tmp_path / "state")
    assert task.step_of(loaded) == task.step_of(state)
    assert same_metrics(task.evaluate(loaded), task.evaluate(state))
    hparams = HPARAMS[task.name]
    resumed = task.train(loaded, hparams, STEPS[task.name], seed=5)
    continued = task.train(state, hparams, STEPS[task.name], seed=5)
    assert same_metrics(task.evaluate(resumed), task.evaluate(continued))


def test_training_is_determined_by_state_hparams_steps_and_seed(task: Task) -> None:
    assert same_metrics(task.evaluate(trained(task, seed=3)), task.evaluate(trained(task, seed=3)))
    assert not same_metrics(task.evaluate(trained(task, seed=3)), task.evaluate(trained(task, seed=4)))


def test_training_leaves_the_state_it_was_given_unchanged(task: Task) -> None:
    state = trained(task)
    before = task.evaluate(state)
    task.train(state, HPARAMS[task.name], STEPS[task.name], seed=9)
    assert same_metrics(task.evaluate(state), before)


def test_step_of_counts_every_training_step(task: Task) -> None:
    hparams = HPARAMS[task.name]
    state = task.init(hparams, seed=0)
    assert task.step_of(state) == 0
    state = task.train(state, hparams, 2, seed=0)
    state = task.train(state, hparams, 1, seed=0)
    assert task.step_of(state) == 3


def test_metrics_hold_every_objective_and_the_score_is_finite(task: Task) -> None:
    metrics = task.evaluate(trained(task))
    assert {o.metric for o in task.objectives} <= metrics.keys()
    assert all(math.isfinite(v) for v in metrics.values())
    assert math.isfinite(task.score(metrics))


@pytest.mark.parametrize("name", ["noisy_quadratic", "two_objective", "hard_quadratic"])
def test_the_top_of_the_learning_rate_range_diverges(name: str) -> None:
    task = TASKS[name]
    hparams = {**HPARAMS[name], "learning_rate": task.parameters[0].high}
    start = task.score(task.evaluate(task.init(hparams, 0)))
    diverged = task.score(task.evaluate(task.train(task.init(hparams, 0), hparams, 200, seed=0)))
    assert not math.isfinite(diverged) or diverged > 1e6 * start


def test_digits_diverges_at_an_absurd_rate_and_scores_one_minus_test_accuracy() -> None:
    task = DigitsTask()
    hparams = {**HPARAMS["digits"], "learning_rate": 1e4}
    metrics = task.evaluate(task.train(task.init(hparams, 0), hparams, 20, seed=0))
    assert not math.isfinite(metrics["loss"]) or metrics["loss"] > 10
    good = task.evaluate(trained(task, steps=100))
    assert task.score(good) == pytest.approx(1 - good["test_accuracy"])
    assert good["accuracy"] > 0.5


def test_digits_freezes_the_shape_changing_hyperparameters_and_breaks_accuracy_ties_by_loss() -> None:
    task = DigitsTask()
    frozen = {p.name for p in task.parameters if p.frozen}
    assert frozen == {"hidden_units", "optimizer"}
    assert [(o.metric, o.goal) for o in task.objectives] == [("accuracy", Goal.MAXIMIZE), ("loss", Goal.MINIMIZE)]
    assert "test_accuracy" in task.evaluate(trained(task))


def test_digits_keeps_what_fits_when_a_method_changes_the_width_anyway() -> None:
    task = DigitsTask()
    state = trained(task)
    wider = {**HPARAMS["digits"], "hidden_units": 64.0}
    continued = task.train(state, wider, 0, seed=2)
    assert continued.model["0.weight"].shape[0] == 64
    assert bool((continued.model["4.weight"] == state.model["4.weight"]).all())
    assert continued.optimizer is not None and not continued.optimizer["state"]


def test_wavenet_learns_and_says_what_to_install_without_espeak(
    wavenet_task: WaveNetTask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hparams = HPARAMS["wavenet"]
    fresh = wavenet_task.evaluate(wavenet_task.init(hparams, 0))
    assert fresh["loss"] == pytest.approx(math.log(256), abs=0.2)
    assert wavenet_task.score(fresh) == fresh["test_loss"]
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="espeak-ng"):
        WaveNetTask(data_dir=str(tmp_path / "none")).speech()


def test_the_closed_form_equals_the_step_by_step_recursion() -> None:
    task = HardQuadraticTask()
    rates = np.array([1.5, 0.4, 0.05])
    c, s = task.curvatures, task.theta0**2
    for rate in np.repeat(rates, 30):
        s = (1 - rate * c) ** 2 * s + rate**2 * c
    assert np.allclose(second_moments(task.theta0**2, c, c, rates, 30), s, rtol=1e-9)
    assert float(task.expected_loss(rates, 30)) == pytest.approx(float(task.expected_loss(np.repeat(rates, 30))))
    untrained = 0.5 * float(np.sum(c * task.theta0**2))
    assert float(expected_loss(task.theta0**2, c, c, [0.3], 0)) == pytest.approx(untrained)


@pytest.mark.parametrize("task", [HardQuadraticTask(), NoisyQuadraticTask()], ids=lambda t: t.name)
def test_the_expected_loss_matches_simulated_sgd(task: HardQuadraticTask | NoisyQuadraticTask) -> None:
    """Monte Carlo over 200 noise seeds of a decaying three-segment schedule, within 4 standard
    errors of the exact expectation."""
    top = task.schedules(quick=True)["free"].rates[0]
    rates, steps = [top, top / 4, top / 30], 60
    finals = []
    for seed in range(200):
        state = task.init({}, seed)
        for rate in rates:
            state = task.train(state, {"learning_rate": rate}, steps, seed)
        finals.append(task.evaluate(state)["loss"])
    mean, error = float(np.mean(finals)), float(np.std(finals) / np.sqrt(len(finals)))
    assert abs(mean - float(task.expected_loss(rates, steps))) < 4 * error


def test_the_hard_task_punishes_early_decay() -> None:
    """The best decaying schedule beats the best constant rate by far more than 3x, and choosing
    the rate that is best one interval ahead (greedy selection's idealization) ends worse than
    the best constant rate."""
    task = HardQuadraticTask()
    found = task.schedules(quick=False)
    constant = task.best_constant()
    assert constant.expected_loss >= 3 * found["exponential"].expected_loss
    assert constant.expected_loss >= 30 * task.limit(quick=False)
    assert task.limit(quick=False) == min(s.expected_loss for s in found.values())
    assert task.myopic().expected_loss > 2 * constant.expected_loss
    assert max(found["free"].rates) <= 2.0 / task.max_curvature


def test_the_noisy_quadratic_limit_is_below_its_best_constant_rate() -> None:
    task = NoisyQuadraticTask()
    assert task.limit(quick=True) < task.schedules(quick=True)["constant"].expected_loss


def test_the_two_objective_task_trades_one_loss_for_the_other() -> None:
    task = TwoObjectiveTask()
    ends = []
    for weight in (0.2, 0.8):
        hparams = {"learning_rate": 0.1, "weight": weight}
        ends.append(task.evaluate(task.train(task.init(hparams, 0), hparams, 300, seed=0)))
    assert ends[1]["loss_a"] < ends[0]["loss_a"] and ends[1]["loss_b"] > ends[0]["loss_b"]
    points = [(m["loss_a"], m["loss_b"]) for m in ends]
    assert 0 < hypervolume(points, task.reference_point) < task.ideal_hypervolume()
    ideal = task.ideal_front(11)
    assert ideal[0] == pytest.approx((2.0, 0.0)) and ideal[-1] == pytest.approx((0.0, 2.0))
    assert TASKS["two_objective"].limit(quick=False) is None


def test_hypervolume_of_known_fronts() -> None:
    assert hypervolume([], (1.0, 1.0)) == 0.0
    assert hypervolume([(1.0, 1.0)], (2.0, 2.0)) == pytest.approx(1.0)
    assert hypervolume([(1.0, 2.0), (2.0, 1.0)], (3.0, 3.0)) == pytest.approx(3.0)
    assert hypervolume([(2.0, 1.0), (1.0, 2.0), (2.5, 2.5), (1.0, 2.0)], (3.0, 3.0)) == pytest.approx(3.0)
    assert hypervolume([(0.0, 0.0), (0.5, 0.5)], (1.0, 2.0)) == pytest.approx(2.0)
    assert hypervolume([(1.0, 5.0), (math.nan, 0.0), (math.inf, 0.0), (3.0, 1.0)], (3.0, 3.0)) == 0.0


def test_pareto_front_keeps_the_non_dominated_points_sorted() -> None:
    points = [(3.0, 1.0), (1.0, 3.0), (2.0, 2.0), (2.5, 2.5), (1.0, 3.0), (math.nan, 0.0)]
    assert pareto_front(points) == [(1.0, 3.0), (2.0, 2.0), (3.0, 1.0)]
    with pytest.raises(ValueError, match="two coordinates"):
        hypervolume([(1.0, 2.0, 3.0)], (4.0, 4.0))
    with pytest.raises(ValueError, match="two coordinates"):
        hypervolume([(1.0, 2.0)], (4.0, 4.0, 4.0))


def test_the_wavenet_speech_defaults_to_the_repository_runs_folder() -> None:
    assert WaveNetTask(data_dir="x").data_folder() == Path("x")
    if "WAVENET_DATA" not in os.environ:
        assert WaveNetTask().data_folder().parts[-3:] == ("runs", "wavenet", "data")
