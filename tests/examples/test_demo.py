"""The main job end to end on the toy example: the service, workers, the report, and the plots it
says it wrote (the README's `scripts/demo.sh` runs the same module on digits)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.worker_client.conftest import ROOT, subprocess_env
from worker_client.results import connect


def test_the_demo_trains_reports_and_plots(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.demo", "--example", "toy", "--population", "4", "--generations", "3",
         "--workers", "2", "--workdir", str(tmp_path), "--study", "toy-demo"],
        capture_output=True, text=True, env=subprocess_env(), cwd=ROOT, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    best = re.search(r"best trial (\d+) \(generation (\d+)\): fitness Q=", done.stdout)
    assert best, done.stdout
    plots = re.search(r"^plots: (.+)/ \((.+)\)$", done.stdout, re.MULTILINE)
    assert plots, done.stdout
    folder = Path(plots.group(1))
    assert folder == tmp_path / "plots" / "toy-demo"
    for name in ("progress", "best", "schedule", "lineage", "hyperparameters"):
        assert (folder / f"{name}.png").stat().st_size > 1000 and (folder / f"{name}.html").is_file()
    with connect(f"sqlite:///{tmp_path / 'pbt.db'}") as results:
        winner = results.study("toy-demo").best(1)[0]
    assert winner.id == int(best.group(1)) and winner.generation == int(best.group(2))
    assert f"pbt-results --database-url sqlite:///{tmp_path / 'pbt.db'} trials toy-demo" in done.stdout
