"""The main job end to end on the toy example: the service, workers, the report, and the plots it
says it wrote; and a short run of the digits MLP that `scripts/demo.sh` runs by default."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from examples.demo import best_measured, describe_search
from pbt_service.core.types import Goal, Measurement, Objective, Trial, TrialStatus
from tests.worker_client.conftest import ROOT, subprocess_env
from worker_client.results import connect


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "examples.demo", *args],
        capture_output=True, text=True, env=subprocess_env(), cwd=ROOT, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_the_demo_trains_reports_and_plots(tmp_path: Path) -> None:
    done = run_demo("--example", "toy", "--population", "4", "--generations", "3", "--workers", "2",
                    "--workdir", str(tmp_path), "--study", "toy-demo")
    assert "tuning: h0, h1 (mutated at every explore step); objective: maximize Q" in done.stdout
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
    assert "best Q=" in done.stderr and "=nan" not in done.stderr  # the bar, on stderr


def test_the_digits_demo_minimizes_validation_loss_and_reports_test_accuracy(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    done = run_demo("--population", "4", "--generations", "2", "--workers", "2", "--no-plots",
                    "--workdir", str(tmp_path), "--study", "digits-demo")
    assert ("tuning: learning_rate, momentum (mutated at every explore step); optimizer, hidden_units "
            "(frozen: sampled once per lineage, inherited, never mutated); objective: minimize loss") in done.stdout
    assert re.search(r"fitness loss=[\d.e-]+; also reported: accuracy=[\d.]+, test_accuracy=[\d.]+$",
                     done.stdout, re.MULTILINE), done.stdout
    assert "best loss=" in done.stderr and "=nan" not in done.stderr


def trial(trial_id: int, status: TrialStatus, *measured: float) -> Trial:
    measurements = tuple(Measurement(step, {"loss": value}) for step, value in enumerate(measured, 1))
    return Trial(trial_id, "s", trial_id, 0, status, {}, measurements=measurements,
                 final_measurement=measurements[-1] if status is TrialStatus.COMPLETED else None)


def test_the_bar_shows_the_best_value_reported_so_far_by_any_trial() -> None:
    loss = Objective("loss", Goal.MINIMIZE)
    assert best_measured([], loss) is None
    assert best_measured([trial(1, TrialStatus.ACTIVE)], loss) is None
    active = trial(2, TrialStatus.ACTIVE, 0.9, 0.4)
    assert best_measured([trial(1, TrialStatus.ACTIVE), active], loss) == 0.4
    assert best_measured([active, trial(3, TrialStatus.COMPLETED, 0.5, float("nan"))], loss) == 0.4
    assert best_measured([active, trial(3, TrialStatus.COMPLETED, 0.7)], Objective("loss", Goal.MAXIMIZE)) == 0.9
    assert best_measured([active], Objective("accuracy", Goal.MAXIMIZE)) is None


def test_the_search_line_names_mutated_and_frozen_parameters() -> None:
    from examples.toy.problem import study_config

    assert describe_search(study_config()) == "tuning: h0, h1 (mutated at every explore step); objective: maximize Q"
