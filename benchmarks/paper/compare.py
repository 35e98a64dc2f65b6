"""`--compare OLD.json`: per task and method, the old and new median score and wall time, and their
ratios, so a change to the service or a task shows up as numbers rather than a feeling."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.paper.records import RunResult
from benchmarks.paper.report import console

HEADER = ["task", "method", "old median", "new median", "new/old", "old wall s", "new wall s", "new/old"]


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data


def medians(data: Mapping[str, Any]) -> dict[tuple[str, str], tuple[float, float]]:
    """(task, method) -> (median score, median wall seconds) over the runs that finished."""
    grouped: dict[tuple[str, str], list[RunResult]] = {}
    for raw in data["runs"]:
        run = RunResult.from_json(raw)
        if run.status == "ok":
            grouped.setdefault((run.task, run.method), []).append(run)
    out = {}
    for key, runs in grouped.items():
        scores = [r.score for r in runs if math.isfinite(r.score)]
        out[key] = (statistics.median(scores) if scores else math.nan, statistics.median(r.seconds for r in runs))
    return out


def _ratio(new: float, old: float) -> str:
    if not (math.isfinite(new) and math.isfinite(old)) or old == 0:
        return "-"
    return f"{new / old:.3f}"


def _cell(value: float | None) -> str:
    return "-" if value is None else (f"{value:.4g}" if math.isfinite(value) else "nan")


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """The table of differences; a row present in only one of the two shows '-' on the other side."""
    before, after = medians(old), medians(new)
    rows = []
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        rows.append([
            key[0], key[1], _cell(b[0] if b else None), _cell(a[0] if a else None),
            _ratio(a[0], b[0]) if a and b else "-", _cell(b[1] if b else None), _cell(a[1] if a else None),
            _ratio(a[1], b[1]) if a and b else "-",
        ])
    return console(HEADER, [*rows]) + "\n(score: lower is better; new/old < 1 is an improvement)"
