"""The examples as users run them: a real in-process service, a study, worker threads."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from examples import noisy_quadratic, toy
from examples.noisy_quadratic import NoisyQuadratic
from pbt_service.core.types import TrialStatus
from pbt_service.local import LocalService
from worker_client import PbtClient, run_workers
from worker_client.context import checkpoint_step


def _step_of(path: str) -> int:
    step = checkpoint_step(Path(path))
    assert step is not None, path
    return step


def test_toy_study_improves_q_generation_after_generation(tmp_path: Path) -> None:
    config = toy.study_config(population_size=4, max_generations=8, steps_per_trial=4, seed=1)
    with LocalService(f"sqlite:///{tmp_path / 'toy.db'}") as service, PbtClient(service.address) as client:
        client.create_study("toy", config)
        ran = run_workers(service.address, "toy", toy.train, toy.evaluate, 2, tmp_path / "runs")
        trials = client.list_trials("toy", statuses=[TrialStatus.COMPLETED])
    assert ran == len(trials) == 32

    def best_q(generation: int) -> float:
        return max(
            t.final_measurement.metrics["Q"] for t in trials if t.generation == generation and t.final_measurement
        )

    assert best_q(7) > best_q(0) + 0.1
    children = [t for t in trials if t.warm_start_checkpoint_path]
    assert children and all(
        checkpoint_step(Path(t.final_measurement.checkpoint_path))
        == _step_of(t.warm_start_checkpoint_path) + 4
        for t in children
        if t.final_measurement
    )


def test_noisy_quadratic_study_outgrows_its_diverging_members(tmp_path: Path) -> None:
    problem = NoisyQuadratic(seed=0)
    config = noisy_quadratic.study_config(population_size=8, max_generations=6, seed=0)
    with LocalService(f"sqlite:///{tmp_path / 'nq.db'}") as service, PbtClient(service.address) as client:
        client.create_study("nq", config)
        run_workers(service.address, "nq", problem.train, problem.evaluate, 1, tmp_path / "runs")
        trials = client.list_trials("nq", statuses=[TrialStatus.COMPLETED])
    losses = {t.id: t.final_measurement.metrics["loss"] for t in trials if t.final_measurement}
    assert len(losses) == 48
    initial = problem.loss(np.ones(problem.dim))
    first = [losses[t.id] for t in trials if t.generation == 0]
    last = [losses[t.id] for t in trials if t.generation == 5]
    assert any(not math.isfinite(v) or v > initial for v in first)  # too large rates were sampled
    assert min(v for v in last if math.isfinite(v)) < 0.5 * initial
