"""The paper suite (`python -m benchmarks.paper`): the runner on the toy task in this process (fast),
and the whole `--quick` suite end to end as CI's smoke test (slow): every method ran on every task
and produced finite numbers, a missing peer is skipped with a visible note, every figure was
written, results.json loads and `--compare` prints its table. Nothing asserts who wins.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.paper import compare
from benchmarks.paper.methods import METHODS
from benchmarks.paper.records import Event, MethodOutcome, selection_key, summarize
from benchmarks.paper.runner import Job, run_job
from benchmarks.paper.suite import DEFAULT_TASKS, main
from benchmarks.paper.toy_task import toy_task

ROOT = Path(__file__).resolve().parents[2]
FAST_METHODS = ("pbt-5x5", "pbt-5x20", "grid", "random", "optuna-tpe", "optuna-hyperband")


@pytest.mark.parametrize("task", ["toy", "toy_pareto"])
def test_runner_on_the_toy_task_spends_the_budget_and_scores_finitely(task: str) -> None:
    budget = toy_task(task == "toy_pareto").budget(quick=True)
    for method in FAST_METHODS:
        result = run_job(Job(task, method, seed=0, quick=True))
        assert result.status == "ok", (method, result.note)
        assert math.isfinite(result.score), method
        assert result.budget == budget.total_steps
        # PBT children may catch up with their generation; the others spend exactly the budget
        assert budget.total_steps * 0.75 <= result.resource <= budget.total_steps * 1.25, (method, result.resource)
        assert result.resource_curve[-1][0] == result.resource, method
        assert result.step_curve and result.schedule, method
        assert (result.hypervolume is not None) == (task == "toy_pareto"), method


def test_pbt_schedule_comes_from_the_service_lineage() -> None:
    result = run_job(Job("toy", "pbt-5x5", seed=1, quick=True))
    starts = [start for start, _ in result.schedule]
    assert starts[0] == 0 and starts == sorted(starts)
    assert max(step for step, _ in result.step_curve) > toy_task().budget(quick=True).interval


def test_selection_ranks_a_diverged_model_last_and_scores_the_chosen_one() -> None:
    task = toy_task()
    events = [
        Event(0.1, 5, 5, "a", {"loss": math.nan, "test_loss": math.nan}, ((0, {"learning_rate": 0.1}),)),
        Event(0.2, 5, 5, "b", {"loss": 2.0, "test_loss": 2.5}, ((0, {"learning_rate": 0.01}),)),
        Event(0.3, 5, 10, "b", {"loss": 1.0, "test_loss": 1.5}, ((0, {"learning_rate": 0.01}),)),
    ]
    assert selection_key(task, events[0].metrics) > selection_key(task, events[1].metrics)
    result = summarize(task, "x", 0, 15, MethodOutcome(events, 15, 2), 1.0)
    assert result.score == 1.5
    assert math.isnan(result.resource_curve[0][1]) and result.resource_curve[1:] == [(10, 2.5), (15, 1.5)]
    assert result.step_curve[-1] == (10, 1.5)


def test_compare_prints_old_new_and_ratio(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_job(Job("toy", "grid", seed=0, quick=True))
    old = {"runs": [dataclasses.asdict(run)]}
    new = {"runs": [{**dataclasses.asdict(run), "score": run.score * 2}]}
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    assert main(["--compare", str(tmp_path / "old.json"), "--against", str(tmp_path / "new.json")]) == 0
    text = capsys.readouterr().out
    assert "toy" in text and "grid" in text and "2.000" in text
    assert "2.000" in compare.compare(old, new)


def _ray_installed() -> bool:
    try:
        import ray.tune  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
def test_quick_suite_runs_every_method_on_every_task(tmp_path: Path) -> None:
    out = tmp_path / "paper"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "benchmarks.paper", "--quick", "--out", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads((out / "results.json").read_text())
    assert list(data["tasks"]) == list(DEFAULT_TASKS)
    for task in DEFAULT_TASKS:
        for method in METHODS:
            runs = [r for r in data["runs"] if r["task"] == task and r["method"] == method]
            assert runs, (task, method)
            for run in runs:
                if run["status"] == "skipped":
                    assert run["note"] and run["note"] in done.stdout, (task, method)
                    assert not (method.startswith("ray") and _ray_installed()), (task, method, run["note"])
                    continue
                assert run["status"] == "ok", (task, method, run["note"])
                assert math.isfinite(run["score"]), (task, method)
                assert run["resource"] > 0 and all(math.isfinite(y) for _, y in run["resource_curve"][-1:])
                if data["tasks"][task]["comparison"] == "pareto":
                    assert run["hypervolume"] is not None and math.isfinite(run["hypervolume"])
    expected = {f"fig{n}_{task}.png" for n in (4, 6, 7, 10, 13) for task in DEFAULT_TASKS} | {"fig12_scalability.png"}
    assert expected <= set(data["plots"])
    for name in data["plots"]:
        assert (out / name).stat().st_size > 0, name
    assert data["scalability"] and all(r["generations_per_hour"] > 0 for r in data["scalability"])
    assert data["overhead"]["returncode"] == "0" and "overhead" in data["overhead"]["output"]
    report = (out / "report.md").read_text()
    assert "python -m benchmarks.paper --quick" in report and "fig4_digits.png" in report

    compared = subprocess.run(
        [sys.executable, "-m", "benchmarks.paper", "--compare", str(out / "results.json"), "--against",
         str(out / "results.json")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)
    assert "new/old" in compared.stdout and "digits" in compared.stdout and "1.000" in compared.stdout
