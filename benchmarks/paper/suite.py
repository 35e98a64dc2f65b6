"""The suite's command line: every method at the same resource on every task, the scalability sweep
(figure 12), the per-trial overhead (figure 9), then results.json, the PNG figures and report.md.

    python -m benchmarks.paper                  # full: 5 seeds, runs/benchmarks/paper (under an hour on 2 cores)
    python -m benchmarks.paper --quick          # smoke test: 1 seed, small budgets (under 5 minutes)
    python -m benchmarks.paper --tasks digits --methods pbt-5x5,random --seeds 3 --out /tmp/paper
    python -m benchmarks.paper --compare runs/old/results.json             # run, then compare with an old run
    python -m benchmarks.paper --compare OLD.json --against NEW.json       # compare two saved runs only
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.paper import compare as compare_module
from benchmarks.paper.methods import METHODS, VARIANT_TASKS
from benchmarks.paper.overhead import run_overhead
from benchmarks.paper.records import RunResult
from benchmarks.paper.report import machine, render
from benchmarks.paper.runner import Job, load_tasks, progress_line, run_jobs
from benchmarks.paper.scalability import sweep
from benchmarks.paper.tasks.base import Task
from worker_client import Comparison

DEFAULT_TASKS = ("noisy_quadratic", "digits", "wavenet", "hard_quadratic", "two_objective")
FULL_OUT = Path("runs/benchmarks/paper")
SCALING = {True: ((1, 4, 16), 0.2, 2.0), False: ((1, 2, 4, 8, 16, 32, 64), 1.0, 12.0)}
"""quick -> (worker counts, trial seconds, seconds per cell)."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.paper", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--quick", action="store_true", help="small budgets, 1 seed: the CI smoke test")
    p.add_argument("--tasks", help=f"comma-separated (default: {','.join(DEFAULT_TASKS)})")
    p.add_argument("--methods", help=f"comma-separated (default: all of {','.join(METHODS)})")
    p.add_argument("--seeds", type=int, help="seeds per task and method (default 5, quick 1)")
    p.add_argument("--out", type=Path, help=f"output folder (default {FULL_OUT}; quick: a temporary folder)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="runs at once, one process each (default: 2, one per core); 0 runs in this process")
    p.add_argument("--compare", type=Path, metavar="OLD.json", help="print the differences from an earlier run")
    p.add_argument("--against", type=Path, metavar="NEW.json", help="with --compare: compare two files, run nothing")
    p.add_argument("--no-scaling", action="store_true", help="skip the figure 12 sweep")
    p.add_argument("--no-overhead", action="store_true", help="skip the figure 9 overhead benchmark")
    return p


def _names(text: str | None, default: Sequence[str], known: Sequence[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()] if text else list(default)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def _task_info(task: Task, quick: bool) -> dict[str, Any]:
    budget = task.budget(quick)
    return {
        "budget": {**dataclasses.asdict(budget), "total_steps": budget.total_steps},
        "limit": task.limit(quick),
        "objectives": [f"{o.metric} ({o.goal.value})" for o in task.objectives],
        "comparison": task.comparison.value,
    }


def plan(args: argparse.Namespace, tasks: dict[str, Task]) -> tuple[list[str], list[str], list[Job], list[str]]:
    """The tasks, methods and jobs to run, and the notes that say what was left out and why."""
    available = [t for t in DEFAULT_TASKS if t in tasks]
    notes = []
    if not available:
        available = ["toy", "toy_pareto"]
        notes.append("the task registry is not there: ran the toy tasks instead")
    elif len(available) < len(DEFAULT_TASKS):
        notes.append(f"tasks missing from the registry: {', '.join(t for t in DEFAULT_TASKS if t not in tasks)}")
    task_names = _names(args.tasks, available, list(tasks), "task")
    method_names = _names(args.methods, list(METHODS), list(METHODS), "method")
    seeds = args.seeds or (1 if args.quick else 5)
    jobs: list[Job] = []
    for task in task_names:
        for method in method_names:
            restricted = METHODS[method].full_tasks
            if not args.quick and not args.methods and restricted is not None and task not in restricted:
                continue
            fewer = METHODS[method].full_seeds if not args.quick and not args.seeds else None
            jobs.extend(Job(task, method, seed, args.quick) for seed in range(min(seeds, fewer or seeds)))
    if not args.quick and not args.methods:
        variants = [m.name for m in METHODS.values() if m.full_tasks is not None]
        notes.append(f"PBT variant rows ({', '.join(variants)}) run on {', '.join(VARIANT_TASKS)} only, to fit the "
                     "hour; --quick runs them on every task")
    reduced = {m: METHODS[m].full_seeds for m in method_names if METHODS[m].full_seeds}
    if reduced and not args.quick and not args.seeds:
        notes.append("seeds: " + ", ".join(f"`{m}` {n}" for m, n in reduced.items()) + f", every other row {seeds} "
                     "(Ray's PB2 takes a minute or two a run at these budgets; --seeds N runs N for every row)")
    for method in method_names:
        missing = METHODS[method].missing()
        if missing:
            notes.append(f"`{method}` skipped: {missing}")
    if args.quick:
        notes.append("--quick runs Ray's runs beside the others to finish in minutes: its wall times include "
                     "their load; the full suite runs Ray alone")
    notes.append("every method trains the same task code (benchmarks/paper/tasks) and is charged every step its "
                 "trials trained; score = task.score of the model with the best validation objectives among all "
                 "models the method evaluated (one evaluation every `interval` steps)")
    return task_names, method_names, jobs, notes


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.against:
        if not args.compare:
            raise SystemExit("--against needs --compare OLD.json")
        print(compare_module.compare(compare_module.load(args.compare), compare_module.load(args.against)))
        return 0
    started = time.perf_counter()
    tasks = load_tasks()
    task_names, method_names, jobs, notes = plan(args, tasks)
    out = args.out or (Path(tempfile.mkdtemp(prefix="paper-quick-")) if args.quick else FULL_OUT)
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.paper " + " ".join(shlex.quote(a) for a in (argv if argv is not None else
                                                                               sys.argv[1:]))
    print(f"{len(jobs)} runs: tasks {', '.join(task_names)}; methods {', '.join(method_names)}; out {out}", flush=True)
    runs = run_jobs(jobs, args.workers, lambda r, done, total: print(progress_line(r, done, total), flush=True),
                    overlap=args.quick)
    scaling = []
    if not args.no_scaling:
        counts, trial_seconds, cell_seconds = SCALING[args.quick]
        print(f"figure 12: workers {counts}, trials of {trial_seconds:g} s, {cell_seconds:g} s each", flush=True)
        scaling = [dataclasses.asdict(r) for r in sweep(counts, trial_seconds, cell_seconds)]
    overhead = None if args.no_overhead else run_overhead(args.quick)
    data: dict[str, Any] = {
        "version": 1,
        "command": command.strip(),
        "quick": args.quick,
        "seeds": args.seeds or (1 if args.quick else 5),
        "machine": machine(),
        "notes": notes,
        "tasks": {name: _task_info(tasks[name], args.quick) for name in task_names},
        "methods": {m: {"family": METHODS[m].family, "description": METHODS[m].description} for m in method_names},
        "runs": [dataclasses.asdict(r) for r in runs],
        "scalability": scaling,
        "overhead": overhead,
        "seconds": 0.0,
    }
    plots = write_plots(data, runs, tasks, out)
    data["plots"] = sorted(name for names in plots.values() for name in names)
    data["seconds"] = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(data, indent=1, allow_nan=True))
    text, report = render(data, plots)
    (out / "report.md").write_text(report + "\n")
    print(text)
    print(f"\nwrote {out / 'results.json'}, {out / 'report.md'} and {len(data['plots'])} figures in {out}")
    if args.compare:
        print("\n" + compare_module.compare(compare_module.load(args.compare), data))
    return 0


def write_plots(data: dict[str, Any], runs: list[RunResult], tasks: dict[str, Task], out: Path) -> dict[str, list[str]]:
    """Every figure; task name (or "" for figure 12) -> file names relative to `out`."""
    from benchmarks.paper import plots
    from benchmarks.paper.scalability import ScalingRow

    written: dict[str, list[str]] = {}
    for name, info in data["tasks"].items():
        task = tasks[name]
        objectives = [o.metric for o in task.objectives] if task.comparison is Comparison.PARETO else []
        paths = plots.task_figures(name, [r for r in runs if r.task == name], out, info["limit"], objectives)
        written[name] = [p.name for p in paths]
    if data["scalability"]:
        rows = [ScalingRow(**row) for row in data["scalability"]]
        written[""] = [plots.scaling(rows, out / "fig12_scalability.png").name]
    return written
