"""Which search settings should be the default: each candidate PBT setting against grid and random
search at the same resource, on several tasks and seeds, through the real service.

This is the measurement the defaults in `pbt_service.core.types` (SelectionConfig, ExploreConfig)
were chosen from; `docs/search.md` shows its output. It reuses the paper suite's tasks, adapters
and methods (`benchmarks/paper/`), so a cell here is the same run as the suite's.

    PYTHONPATH=. python benchmarks/search_defaults.py --tasks hard_quadratic,noisy_quadratic --seeds 5
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.paper import methods_static
from benchmarks.paper.methods_ours import run_pbt
from benchmarks.paper.records import MethodOutcome, summarize
from benchmarks.paper.runner import load_tasks
from benchmarks.paper.tasks.base import Budget, Task
from benchmarks.paper.variants import PbtVariant
from worker_client import ExploreConfig, ExploreStrategy, SelectionConfig, SelectionScore, SelectionStrategy


@dataclass(frozen=True)
class Candidate:
    """A setting to try; `selection` gets the task's budget (burn-in is a fraction of a run). Every
    candidate states its selection: the default changed once these numbers came in."""

    name: str
    selection: Callable[[Budget], SelectionConfig]
    explore: ExploreConfig = field(default_factory=ExploreConfig)


GREEDY = 1
"""`ready_generations` of the paper's PBT: every generation may exploit. The candidates below
change one thing from it; `ready-2` is what became the default."""

CANDIDATES: tuple[Candidate, ...] = (
    Candidate("greedy", lambda b: SelectionConfig(ready_generations=GREEDY)),
    Candidate("ready-2", lambda b: SelectionConfig(ready_generations=2)),
    Candidate("ready-4", lambda b: SelectionConfig(ready_generations=4)),
    Candidate("burn-in-half",
              lambda b: SelectionConfig(ready_generations=GREEDY, burn_in_steps=b.steps_per_member // 2)),
    Candidate("burn-in-quarter",
              lambda b: SelectionConfig(ready_generations=GREEDY, burn_in_steps=b.steps_per_member // 4)),
    Candidate("smoothed-3", lambda b: SelectionConfig(ready_generations=GREEDY, score=SelectionScore.SMOOTHED)),
    Candidate("improvement-3",
              lambda b: SelectionConfig(ready_generations=GREEDY, score=SelectionScore.IMPROVEMENT)),
    Candidate("truncation",
              lambda b: SelectionConfig(ready_generations=GREEDY, strategy=SelectionStrategy.TRUNCATION)),
    Candidate("pb2", lambda b: SelectionConfig(ready_generations=GREEDY), ExploreConfig(ExploreStrategy.PB2)),
    Candidate("resample", lambda b: SelectionConfig(ready_generations=GREEDY),
              ExploreConfig(ExploreStrategy.RESAMPLE)),
)

BASELINES: dict[str, Callable[[Task, Budget, int, Path], MethodOutcome]] = {
    "grid": methods_static.run_grid,
    "random": methods_static.run_random,
}


def run_cell(task: Task, name: str, seed: int) -> tuple[float, float]:
    """(score, seconds) of one run; lower score is better."""
    budget = task.budget(False)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pbt-defaults-") as folder:
        if name in BASELINES:
            outcome = BASELINES[name](task, budget, seed, Path(folder))
        else:
            c = next(c for c in CANDIDATES if c.name == name)
            variant = PbtVariant(name, budget.members, selection=c.selection(budget), explore=c.explore)
            outcome = run_pbt(variant, task, budget, seed, Path(folder))
    seconds = time.perf_counter() - start
    return summarize(task, name, seed, budget.total_steps, outcome, seconds).score, seconds


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--tasks", default="hard_quadratic,noisy_quadratic")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--candidates", default=",".join(c.name for c in CANDIDATES))
    args = p.parse_args(argv)
    tasks = load_tasks()
    names = [*args.candidates.split(","), *BASELINES]
    for task_name in args.tasks.split(","):
        task = tasks[task_name]
        budget = task.budget(False)
        print(f"\n{task_name}: {budget.members} members x {budget.intervals} intervals x {budget.interval} steps; "
              f"5 PBT workers; score (lower is better): median [min, max] over seeds 0..{args.seeds - 1}")
        print(f"{'setting':<15} {'median':>10} {'min':>10} {'max':>10} {'vs grid':>8} {'vs random':>9} {'s/run':>6}")
        rows: dict[str, tuple[float, float, float, float]] = {}
        for name in [*BASELINES, *names[: -len(BASELINES)]]:
            cells = [run_cell(task, name, seed) for seed in range(args.seeds)]
            scores = [s if math.isfinite(s) else math.inf for s, _ in cells]
            rows[name] = (statistics.median(scores), min(scores), max(scores),
                          statistics.mean(t for _, t in cells))
            med, lo, hi, sec = rows[name]
            grid, rand = rows["grid"][0], rows.get("random", rows["grid"])[0]
            print(f"{name:<15} {med:>10.4g} {lo:>10.4g} {hi:>10.4g} {grid / med:>8.2f} {rand / med:>9.2f} "
                  f"{sec:>6.1f}", flush=True)
        limit = task.limit(False)
        if limit is not None:
            print(f"{'limit':<15} {limit:>10.4g}   (the task's best schedule at this budget)")


if __name__ == "__main__":
    main()
