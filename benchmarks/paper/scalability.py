"""Figure 12: generations per hour against workers, with fixed-length simulated trials.

Each cell runs the real service (`LocalService` on a fresh SQLite file) and N worker threads whose
trainer sleeps `trial_seconds` and writes one checkpoint, for `cell_seconds`; the population is
the largest worker count, so no worker ever waits for a generation to fill. Generations per hour
= completed trials per second × 3600 / population. Perfect scaling is N / trial_seconds trials
per second; `efficiency` is the measured fraction of that, and the largest N with efficiency of
at least `SUSTAINED` is what this machine sustains.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pbt_service.local import LocalService
from worker_client import (
    AlgorithmConfig,
    ClientSettings,
    Goal,
    Objective,
    ParameterSpec,
    ParameterType,
    PbtClient,
    Scale,
    StudyConfig,
    Trainer,
    TrialContext,
    TrialStatus,
    WorkerPool,
)
from worker_client.pool import Member

SUSTAINED = 0.8


@dataclass(frozen=True)
class ScalingRow:
    workers: int
    population: int
    trial_seconds: float
    seconds: float
    trials: int
    trials_per_second: float
    generations_per_hour: float
    efficiency: float


def _train(seconds: float) -> Trainer:
    def train(ctx: TrialContext) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not ctx.should_stop():
            time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
        path = ctx.checkpoint_path(ctx.generation + 1)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(str(ctx.hparams["lr"]))
        temporary.replace(path)

    return train


def _evaluate(ctx: TrialContext, checkpoint: Path) -> dict[str, float]:
    return {"score": float(checkpoint.read_text())}


def measure(workers: int, population: int, trial_seconds: float, cell_seconds: float) -> ScalingRow:
    """One cell: `workers` threads for `cell_seconds` on a fresh service."""
    logging.getLogger("worker_client").setLevel(logging.WARNING)
    config = StudyConfig(
        parameters=(ParameterSpec("lr", ParameterType.FLOAT, low=1e-3, high=1.0, scale=Scale.LOG),),
        objectives=(Objective("score", Goal.MAXIMIZE),),
        algorithm=AlgorithmConfig(population_size=population, seed=0),
    )
    with tempfile.TemporaryDirectory(prefix="paper-scaling-") as folder:
        with LocalService(f"sqlite:///{Path(folder) / 'pbt.db'}", max_workers=max(16, 2 * workers)) as service:
            with PbtClient(service.address) as client:
                client.create_study("scaling", config)
            members = [Member(f"scaling-w{i}", f"w{i}") for i in range(workers)]
            pool = WorkerPool(ClientSettings(service.address), "scaling", _train(trial_seconds),
                              _evaluate, members, workdir=Path(folder) / "runs", grace_seconds=2.0)
            started = time.perf_counter()
            result = pool.run(max_seconds=cell_seconds)
            seconds = time.perf_counter() - started
    trials = result.counts.get(TrialStatus.COMPLETED, 0)
    rate = trials / cell_seconds
    return ScalingRow(workers, population, trial_seconds, seconds, trials, rate, rate * 3600 / population,
                      rate * trial_seconds / workers)


def sweep(worker_counts: Sequence[int], trial_seconds: float, cell_seconds: float) -> list[ScalingRow]:
    """Every worker count, smallest first; stops after the first count below half efficiency
    (more workers would only queue)."""
    population = max(worker_counts)
    rows = []
    for workers in sorted(worker_counts):
        row = measure(workers, population, trial_seconds, cell_seconds)
        rows.append(row)
        if row.efficiency < SUSTAINED / 2:
            break
    return rows


def sustained(rows: Sequence[ScalingRow]) -> int:
    """The largest worker count that kept at least `SUSTAINED` of perfect scaling (0: none)."""
    return max((r.workers for r in rows if r.efficiency >= SUSTAINED), default=0)
