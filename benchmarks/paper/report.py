"""Tables for the console and the markdown report, from the results alone.

A task's table has one row per method: the median and spread (min..max, and the interquartile
range) over seeds of the chosen model's score, the hypervolume for a two-objective task, the
resource the method actually trained against the budget, the median wall time and trials, and
the row's note (a skipped package, one objective only, how PBT spent the budget).
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

from benchmarks.paper import verdict
from benchmarks.paper.records import RunResult
from benchmarks.paper.scalability import ScalingRow, sustained

PACKAGES = ("numpy", "torch", "scikit-learn", "optuna", "cmaes", "ray", "matplotlib", "grpcio", "sqlalchemy")


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    info = {"cpus": str(os.cpu_count()), "platform": platform.platform(), "python": sys.version.split()[0]}
    for package in PACKAGES:
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = "not installed"
    return info


def _number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if math.isfinite(value) else "nan"


def _quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def method_row(method: str, runs: Sequence[RunResult]) -> list[str]:
    """One table row from a method's runs on one task."""
    ok = [r for r in runs if r.status == "ok"]
    notes = sorted({r.note for r in runs if r.note})
    note = "; ".join(notes)[:160]
    if not ok:
        status = runs[0].status if runs else "not run"
        return [method, f"0/{len(runs)}", status, "", "", "", "", "", "", note]
    scores = sorted(r.score for r in ok if math.isfinite(r.score))
    diverged = len(ok) - len(scores)
    median = statistics.median(scores) if scores else math.nan
    spread = f"{_number(scores[0])}..{_number(scores[-1])}" if scores else "-"
    q1, q3 = _quartiles(scores) if scores else (math.nan, math.nan)
    volumes = [r.hypervolume for r in ok if r.hypervolume is not None]
    volume = _number(statistics.median(volumes)) if volumes else "-"
    resource = f"{statistics.median(r.resource for r in ok):.0f}/{ok[0].budget}"
    return [
        method, f"{len(ok)}/{len(runs)}" + (f" ({diverged} nan)" if diverged else ""), _number(median), spread,
        f"{_number(q1)}..{_number(q3)}", volume, resource, f"{statistics.median(r.seconds for r in ok):.1f}",
        f"{statistics.median(r.trials for r in ok):.0f}", note,
    ]


HEADER = ["method", "runs", "median", "min..max", "IQR", "hypervolume", "resource/budget", "wall s", "trials", "note"]


def task_rows(runs: Sequence[RunResult], methods: Sequence[str]) -> list[list[str]]:
    """The task's rows in the methods' order (a method with no run on the task is left out)."""
    return [method_row(m, [r for r in runs if r.method == m]) for m in methods if any(r.method == m for r in runs)]


def console(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Aligned columns, numbers right-aligned, the note last and free."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=False))]
        lines.append("  ".join(cells + [str(row[-1])]).rstrip())
    return "\n".join(lines)


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(value: str) -> str:
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


SCALING_HEADER = ["workers", "population", "trial s", "trials", "trials/s", "gens/hour", "efficiency"]


def scaling_rows(rows: Sequence[ScalingRow]) -> list[list[str]]:
    return [[str(r.workers), str(r.population), f"{r.trial_seconds:g}", str(r.trials), f"{r.trials_per_second:.2f}",
             f"{r.generations_per_hour:.0f}", f"{r.efficiency:.2f}"] for r in rows]


def task_header(name: str, info: Mapping[str, Any]) -> str:
    """The task's budget, objectives and limit in one line."""
    budget = info["budget"]
    limit = info.get("limit")
    text = (f"{name}: budget {budget['members']} members x {budget['intervals']} intervals x {budget['interval']} "
            f"steps = {budget['total_steps']} steps per run; objectives {', '.join(info['objectives'])} "
            f"({info['comparison']}); score lower is better")
    if limit is not None:
        text += f"; the task's limit (expected score of its best decaying schedule) {_number(limit)}"
    return text


def render(data: Mapping[str, Any], plots_of: Mapping[str, Sequence[str]]) -> tuple[str, str]:
    """The console text and the markdown report of a results.json document."""
    runs = [RunResult.from_json(r) for r in data["runs"]]
    methods = list(data["methods"])
    lines = [f"$ {data['command']}",
             f"mode {'quick' if data['quick'] else 'full'}, {data['seeds']} seed(s), wall {data['seconds']:.0f} s; "
             + ", ".join(f"{k} {v}" for k, v in data["machine"].items())]
    md = ["# Paper benchmark suite", "", "```", f"$ {data['command']}", "```", "",
          f"Mode **{'quick' if data['quick'] else 'full'}**, {data['seeds']} seed(s) per method and task, "
          f"whole suite {data['seconds']:.0f} s. Machine: "
          + ", ".join(f"{k} {v}" for k, v in data["machine"].items()) + ".", ""]
    md += [f"- {note}" for note in data["notes"]] + [""]
    md += ["Methods:", ""] + [f"- `{m}` ({info['family']}): {info['description']}" for m, info in
                              data["methods"].items()] + [""]
    for task, info in data["tasks"].items():
        rows = task_rows([r for r in runs if r.task == task], methods)
        if info.get("limit") is not None:
            rows.append(["limit", "", _number(info["limit"]), "", "", "", "", "", "",
                         "expected score of the task's best decaying schedule at this budget (computed, not trained)"])
        lines += ["", task_header(task, info), console(HEADER, rows)]
        md += [f"## {task}", "", task_header(task, info), "", markdown(HEADER, rows), ""]
        md += [f"![{name}]({name})" for name in plots_of.get(task, [])] + [""]
    scaling = [ScalingRow(**row) for row in data.get("scalability", [])]
    if scaling:
        title = (f"figure 12: generations per hour against workers (the largest count sustained at >= 80% of "
                 f"perfect scaling: {sustained(scaling)})")
        lines += ["", title, console(SCALING_HEADER, scaling_rows(scaling))]
        md += ["## Scalability (figure 12)", "", title, "", markdown(SCALING_HEADER, scaling_rows(scaling)), ""]
        md += [f"![{name}]({name})" for name in plots_of.get("", [])] + [""]
    overhead = data.get("overhead")
    if overhead:
        lines += ["", f"figure 9: per-trial overhead ($ {overhead['command']})", overhead["output"].rstrip()]
        md += ["## Per-trial overhead (figure 9)", "", "```", f"$ {overhead['command']}", overhead["output"].rstrip(),
               "```", ""]
    wins = verdict.markdown(data)
    if wins:
        md += ["## Where the default PBT beat each method (ratios of medians, seeds won)", "", wins, ""]
    return "\n".join(lines), "\n".join(md)
