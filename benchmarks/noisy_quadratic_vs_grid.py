"""PBT through the real service vs a grid of constant learning rates on the noisy quadratic.

For each seed: a `LocalService` on a fresh SQLite file runs PBT (population P, G generations of
10 SGD steps, so every lineage trains 10·G steps) with worker threads; PBT's score is the best
final loss among the trials of the last generation (each trained the full 10·G steps). The
baseline trains each of K learning rates log-spaced in [1e-4, 1] from scratch for the same 10·G
steps with the same trainer and noise model; its score is the best of the K. Lower is better.

    PYTHONPATH=. python benchmarks/noisy_quadratic_vs_grid.py --seeds 3 --workers 1
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from examples.noisy_quadratic import NoisyQuadratic, study_config
from examples.noisy_quadratic.problem import STEPS_PER_TRIAL
from pbt_service.core.types import TrialStatus
from pbt_service.local import LocalService
from worker_client import PbtClient, run_workers
from worker_client.context import TrialContext


@dataclass(frozen=True)
class PbtResult:
    best_loss: float
    learning_rate: float
    steps: int
    trials: int
    diverged: int
    seconds: float


@dataclass(frozen=True)
class GridResult:
    best_loss: float
    learning_rate: float
    diverged: int
    seconds: float


def finite_min(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    """(loss, lr) with the smallest finite loss; (inf, nan) when every run diverged."""
    finite = [p for p in pairs if math.isfinite(p[0])]
    return min(finite) if finite else (math.inf, math.nan)


def run_pbt(seed: int, args: argparse.Namespace, workdir: Path) -> PbtResult:
    problem = NoisyQuadratic(seed=seed)
    config = study_config(args.population, args.generations, STEPS_PER_TRIAL, seed=seed)
    start = time.perf_counter()
    with LocalService(f"sqlite:///{workdir / 'pbt.db'}") as service, PbtClient(service.address) as client:
        study = client.create_study(f"noisy-quadratic-{seed}", config).name
        run_workers(service.address, study, problem.train, problem.evaluate, args.workers, workdir / "runs")
        trials = client.list_trials(study, statuses=[TrialStatus.COMPLETED], with_measurements=False)
    seconds = time.perf_counter() - start
    measured = [(t, t.final_measurement) for t in trials if t.final_measurement is not None]
    last = [(m, t) for t, m in measured if t.generation == args.generations - 1]
    finals = [(m.metrics["loss"], m.step, float(t.hparams["learning_rate"])) for m, t in last]
    loss, steps, lr = min((f for f in finals if math.isfinite(f[0])), default=(math.inf, 0, math.nan))
    diverged = sum(1 for _, m in measured if not math.isfinite(m.metrics["loss"]))
    return PbtResult(loss, lr, steps, len(trials), diverged, seconds)


def run_grid(seed: int, args: argparse.Namespace, workdir: Path) -> GridResult:
    problem = NoisyQuadratic(seed=seed)
    steps = args.generations * STEPS_PER_TRIAL
    start = time.perf_counter()
    results = []
    for i, lr in enumerate(np.logspace(-4.0, 0.0, args.grid)):
        model_dir = workdir / f"grid-{i}"
        model_dir.mkdir()
        ctx = TrialContext(
            trial_id=1_000_000 + i,
            study="grid",
            generation=0,
            hparams={"learning_rate": float(lr)},
            warm_start_checkpoint_path=None,
            model_dir=model_dir,
            steps=steps,
        )
        problem.train(ctx)
        results.append((problem.evaluate(ctx, ctx.checkpoint_path(steps))["loss"], float(lr)))
    loss, lr = finite_min(results)
    diverged = sum(1 for value, _ in results if not math.isfinite(value))
    return GridResult(loss, lr, diverged, time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    steps = args.generations * STEPS_PER_TRIAL
    print(
        f"noisy quadratic (dim 20, curvatures 1..100, gradient noise std sqrt(c)), "
        f"{steps} SGD steps per run\n"
        f"PBT: population {args.population}, {args.generations} generations x {STEPS_PER_TRIAL} steps, "
        f"worker threads: {args.workers}; score = best final loss of the last generation\n"
        f"('steps' = that trial's global step: a tournament may pick a parent from an older generation)\n"
        f"grid: {args.grid} constant learning rates log-spaced in [1e-4, 1], "
        f"each {steps} steps from scratch; score = best final loss\n"
    )
    header = f"{'seed':>4}  {'PBT loss':>10}  {'PBT final lr':>12}  {'steps':>5}  {'trials':>6}  {'PBT s':>6}  "
    header += f"{'grid loss':>10}  {'grid lr':>9}  {'grid div.':>9}  {'winner':>6}"
    print(header)
    pbt_losses, grid_losses = [], []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory(prefix="pbt-nq-") as tmp:
            pbt = run_pbt(seed, args, Path(tmp))
            grid = run_grid(seed, args, Path(tmp))
        pbt_losses.append(pbt.best_loss)
        grid_losses.append(grid.best_loss)
        print(
            f"{seed:>4}  {pbt.best_loss:>10.4f}  {pbt.learning_rate:>12.2e}  {pbt.steps:>5}  "
            f"{pbt.trials:>6}  {pbt.seconds:>6.1f}  "
            f"{grid.best_loss:>10.4f}  {grid.learning_rate:>9.2e}  {grid.diverged:>9}  "
            f"{'PBT' if pbt.best_loss < grid.best_loss else 'grid':>6}"
        )
    pbt_median, grid_median = statistics.median(pbt_losses), statistics.median(grid_losses)
    winner = "PBT" if pbt_median < grid_median else "grid"
    print(
        f"\nmedian over {args.seeds} seeds: PBT {pbt_median:.4f}, grid {grid_median:.4f} "
        f"-> {winner} wins (ratio grid/PBT = {grid_median / pbt_median:.2f})"
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--population", type=int, default=10)
    p.add_argument("--generations", type=int, default=40)
    p.add_argument("--grid", type=int, default=40, help="number of constant learning rates")
    p.add_argument("--workers", type=int, default=1, help="worker threads for PBT (1: reproducible)")
    return p


if __name__ == "__main__":
    main()
