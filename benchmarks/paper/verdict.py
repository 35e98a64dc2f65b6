"""Where our PBT beat each other method at equal resource, and by how much: per task, the default
PBT row (`pbt-5x5`) against every other row, as the ratio of medians and the seeds won.

Scores are lower-is-better (`Task.score`), so `ratio = other's median / PBT's median`: above 1 PBT
is better by that factor, below 1 it lost. Seeds won pairs the runs of the same seed (the same
task noise). A method whose runs did not finish appears with its status and no ratio.

    python -m benchmarks.paper.verdict runs/benchmarks/paper/results.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.paper.records import RunResult

OURS = "pbt-5x5"
"""The row of the service's default settings."""


def _median(runs: Sequence[RunResult]) -> float:
    scores = [r.score if math.isfinite(r.score) else math.inf for r in runs if r.status == "ok"]
    return statistics.median(scores) if scores else math.nan


def rows(runs: Sequence[RunResult], task: str, ours: str = OURS) -> list[list[str]]:
    """[method, other median, PBT median, ratio, seeds PBT won/paired, verdict, hypervolumes] for one
    task (the hypervolumes only for a two-objective task, whose score is its first objective)."""
    of_task = [r for r in runs if r.task == task]
    mine = {r.seed: r for r in of_task if r.method == ours and r.status == "ok"}
    if not mine:
        return []
    pbt = _median(list(mine.values()))
    table = []
    for method in dict.fromkeys(r.method for r in of_task if r.method != ours):
        theirs = [r for r in of_task if r.method == method]
        ok = [r for r in theirs if r.status == "ok"]
        if not ok:
            table.append([method, theirs[0].status, f"{pbt:.4g}", "-", "-", theirs[0].status])
            continue
        other = _median(ok)
        pairs = [(mine[r.seed].score, r.score) for r in ok if r.seed in mine]
        won = sum(_lower(a, b) for a, b in pairs)
        ratio = other / pbt if pbt > 0 and math.isfinite(other) else math.inf if pbt == 0 else math.nan
        verdict = "PBT better" if other > pbt else "PBT worse" if other < pbt else "tie"
        row = [method, f"{other:.4g}", f"{pbt:.4g}", f"{ratio:.2f}", f"{won}/{len(pairs)}", verdict]
        table.append([*row, _hypervolumes(ok, list(mine.values()))])
    return table


def _hypervolumes(theirs: Sequence[RunResult], mine: Sequence[RunResult]) -> str:
    """'its / PBT's' median hypervolume (higher is better) for a two-objective task, else '-'."""
    a = [r.hypervolume for r in theirs if r.hypervolume is not None]
    b = [r.hypervolume for r in mine if r.hypervolume is not None]
    if not a or not b:
        return "-"
    return f"{statistics.median(a):.3g} / {statistics.median(b):.3g}"


def _lower(a: float, b: float) -> bool:
    a = a if math.isfinite(a) else math.inf
    b = b if math.isfinite(b) else math.inf
    return a < b


HEADER = ["method", "its median", f"{OURS} median", "ratio (its / PBT)", "seeds PBT won", "verdict",
          "hypervolume, its / PBT's (higher is better)"]


def markdown(data: Mapping[str, Any]) -> str:
    """One table per task of a results.json document."""
    runs = [RunResult.from_json(r) for r in data["runs"]]
    parts = []
    for task in data["tasks"]:
        table = rows(runs, task)
        if not table:
            continue
        lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        lines += ["| " + " | ".join(row) + " |" for row in table]
        parts.append(f"### {task}: {OURS} against each method (lower score is better)\n\n" + "\n".join(lines))
    return "\n\n".join(parts)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("results", type=Path, help="a results.json the suite wrote")
    args = p.parse_args(argv)
    print(markdown(json.loads(args.results.read_text())))


if __name__ == "__main__":
    main()
