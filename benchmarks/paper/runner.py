"""Runs (task, method, seed) jobs and returns one `RunResult` each.

Independent runs go to a pool of processes (2 on this machine, one run per core, each with one
torch thread, so a run's wall time means the same whatever runs beside it); Ray's runs go after
them to one process of their own, which starts Ray once with both cores (`--quick` runs the two
side by side, to finish in minutes). Each run gets a fresh
temporary folder. A method whose package is missing yields a `skipped` result with the reason;
an exception yields `failed` with the error, so one broken row never hides the others.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from benchmarks.paper.methods import METHODS
from benchmarks.paper.records import RunResult, summarize
from benchmarks.paper.tasks.base import Task
from benchmarks.paper.toy_task import toy_task


@dataclass(frozen=True)
class Job:
    task: str
    method: str
    seed: int
    quick: bool


def load_tasks() -> dict[str, Task]:
    """The registry's tasks (when it is there) and the toy tasks, by name."""
    tasks: dict[str, Task] = {"toy": cast(Task, toy_task()), "toy_pareto": cast(Task, toy_task(True))}
    try:
        from benchmarks.paper.tasks.registry import TASKS  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return tasks
    return {**dict(TASKS), **tasks}


def limit_threads() -> None:
    """One BLAS and torch thread per process: two runs on two cores, not four threads fighting.
    Also silences the Gaussian processes' convergence warnings (PB2 fits one per child), which
    would bury the progress lines."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"
    noise = "optimal value found|lbfgs failed to converge|greenlet|Predicted variances"
    warnings.filterwarnings("ignore", message=f".*({noise}).*")
    try:
        from sklearn.exceptions import ConvergenceWarning
    except ImportError:
        pass
    else:
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


def run_job(job: Job) -> RunResult:
    """One run in this process (see the module docstring for skipped and failed)."""
    method = METHODS[job.method]
    missing = method.missing()
    if missing:
        return RunResult(job.task, job.method, job.seed, "skipped", missing)
    task = load_tasks()[job.task]
    budget = task.budget(job.quick)
    started = time.perf_counter()
    try:
        method.prepare()
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"paper-{job.task}-{job.method}-") as folder:
            outcome = method.run(task, budget, job.seed, Path(folder))
    except Exception as error:  # noqa: BLE001 - recorded as the row's note
        last = traceback.format_exception_only(type(error), error)[-1].strip()
        return RunResult(job.task, job.method, job.seed, "failed", last[:500], budget=budget.total_steps,
                         seconds=time.perf_counter() - started)
    return summarize(task, job.method, job.seed, budget.total_steps, outcome, time.perf_counter() - started)


def run_jobs(
    jobs: Iterable[Job], parallel: int, progress: Callable[[RunResult, int, int], None], overlap: bool = False
) -> list[RunResult]:
    """Every job: non-Ray runs in `parallel` processes (0: in this process, for tests), Ray's runs
    in one process, after the others, or beside them with `overlap` (the smoke test's shortcut:
    wall times then include the other runs' load). Results come back in the jobs' order."""
    jobs = list(jobs)
    order = {job: i for i, job in enumerate(jobs)}
    results: dict[int, RunResult] = {}

    def done(job: Job, result: RunResult) -> None:
        results[order[job]] = result
        progress(result, len(results), len(jobs))

    skipped = [job for job in jobs if METHODS[job.method].missing()]
    for job in skipped:
        done(job, run_job(job))
    to_run = [job for job in jobs if job not in skipped]
    others = [j for j in to_run if METHODS[j.method].family != "ray"]
    ray = [j for j in to_run if METHODS[j.method].family == "ray"]
    if parallel == 0:
        for job in others + ray:
            done(job, run_job(job))
    elif overlap:
        _in_pools([(others, parallel), (ray, 1)], done)
    else:
        _in_pools([(others, parallel)], done)
        _in_pools([(ray, 1)], done)
    return [results[i] for i in range(len(jobs))]


def _in_pools(groups: list[tuple[list[Job], int]], done: Callable[[Job, RunResult], None]) -> None:
    """Runs each group of jobs in its own pool of processes, all groups at once."""
    context = multiprocessing.get_context("spawn")  # gRPC and torch do not survive fork
    pools = [ProcessPoolExecutor(size, mp_context=context, initializer=limit_threads)
             for group, size in groups if group]
    try:
        futures: dict[Future[RunResult], Job] = {}
        for pool, (group, _) in zip(pools, [g for g in groups if g[0]], strict=True):
            futures.update({pool.submit(run_job, job): job for job in group})
        for future in as_completed(futures):
            job = futures[future]
            try:
                result = future.result()
            except Exception as error:  # noqa: BLE001 - a dead worker process
                result = RunResult(job.task, job.method, job.seed, "failed", f"process died: {error!r}"[:500])
            done(job, result)
    finally:
        for pool in pools:
            pool.shutdown()


def progress_line(result: RunResult, done: int, total: int) -> str:
    """One line per finished run, for the console."""
    head = f"[{done:>3}/{total}] {result.task:<16} {result.method:<17} seed {result.seed}"
    if result.status != "ok":
        return f"{head}: {result.status.upper()} {result.note}"
    score = f"{result.score:.4g}" if math.isfinite(result.score) else "nan"
    return f"{head}: score {score}, {result.resource}/{result.budget} steps, {result.seconds:.1f} s"
