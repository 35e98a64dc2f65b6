"""Python mode end to end: `Job` (decorators + pbt-worker's options) and `--trainer-module`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pbt_service.core.types import TrialStatus
from pbt_service.local import LocalService
from tests.service.conftest import simple_config
from tests.worker_client.conftest import assert_study_invariants, python_mode_args
from tests.worker_client.scripts import python_job
from worker_client import Job, PbtClient, TrialContext
from worker_client.cli import main


def test_a_job_creates_its_study_and_runs_it_to_the_end(
    service: LocalService, client: PbtClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = Job(study_config=simple_config(population=3, max_generations=3, seed=2))
    job.trainer(python_job.train)
    job.evaluator(python_job.evaluate)

    code = job.main(python_mode_args(service.address, "job", tmp_path / "runs", ["--workers", "2"]))

    assert code == 0
    trials = client.list_trials("job")
    assert len(trials) == 9
    assert_study_invariants(trials, measurements_per_trial=2)
    out = capsys.readouterr().out
    assert "[w0] trial" in out and "[w1] trial" in out


def test_trainer_and_evaluator_modules_from_the_command_line(
    service: LocalService, client: PbtClient, tmp_path: Path
) -> None:
    client.create_study("modules", simple_config(population=2, max_generations=2))
    module = "tests.worker_client.scripts.python_job"
    options = ["--trainer-module", f"{module}:train", "--evaluator-module", f"{module}:evaluate"]

    assert main(python_mode_args(service.address, "modules", tmp_path / "runs", options)) == 0

    assert_study_invariants(client.list_trials("modules"), measurements_per_trial=2)


def test_bad_modules_and_a_job_without_trainer_are_refused_before_any_trial(
    service: LocalService, client: PbtClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client.create_study("refused", simple_config(population=2, max_generations=1))
    args = python_mode_args(service.address, "refused", tmp_path / "runs")

    evaluator = ["--evaluator-module", "tests.worker_client.scripts.python_job:evaluate"]
    assert main([*args, "--trainer-module", "no_such_module:train", *evaluator]) == 2
    assert "cannot import 'no_such_module'" in capsys.readouterr().err
    assert main([*args, "--trainer-module", "tests.worker_client.scripts.python_job:nothing", *evaluator]) == 2
    assert "has no attribute 'nothing'" in capsys.readouterr().err
    assert Job(evaluator=python_job.evaluate).main(args) == 2
    assert "no trainer" in capsys.readouterr().err
    assert client.list_trials("refused") == []


def test_evaluator_mistakes_fail_the_trial_and_nan_is_a_diverged_trial(
    service: LocalService, client: PbtClient, tmp_path: Path
) -> None:
    answers = [{"loss": 1.0}, {"score": [1.0]}, {"score": float("nan")}, {"score": float("inf")}]

    def evaluate(ctx: TrialContext, checkpoint: Path) -> dict[str, float]:
        return answers[ctx.trial_id - 1]  # type: ignore[return-value]

    job = Job(python_job.train, evaluate, study_config=simple_config(population=4, max_trials=4))
    assert job.main(python_mode_args(service.address, "mistakes", tmp_path / "runs", ["--max-trials", "4"])) == 0

    missing, garbage, nan, inf = client.list_trials("mistakes")
    assert missing.status is TrialStatus.FAILED
    assert "left out objective metric(s) 'score'" in missing.status_message and "'loss'" in missing.status_message
    assert garbage.status is TrialStatus.FAILED and "non-number for metric 'score'" in garbage.status_message
    for diverged in (nan, inf):
        assert diverged.status is TrialStatus.COMPLETED
        assert diverged.final_measurement is not None
        assert not math.isfinite(diverged.final_measurement.metrics["score"])
        assert len(diverged.measurements) == 1


def test_python_mode_leaves_only_the_checkpoints_in_the_model_directory(service: LocalService, tmp_path: Path) -> None:
    job = Job(python_job.train, python_job.evaluate, study_config=simple_config(population=2, max_trials=2))
    assert job.main(python_mode_args(service.address, "plain", tmp_path / "runs")) == 0
    model_dirs = sorted((tmp_path / "runs" / "plain").iterdir())
    assert len(model_dirs) == 2
    assert all(sorted(p.name for p in d.iterdir()) == ["ckpt-000000005", "ckpt-000000010"] for d in model_dirs)
    assert json.loads((model_dirs[0] / "ckpt-000000010").read_text())["step"] == 10
