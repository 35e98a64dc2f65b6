"""The command-mode and WaveNet examples, run the way their READMEs say, on small studies."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from pbt_service.core.types import TrialStatus
from pbt_service.local import LocalService
from tests.worker_client.conftest import ROOT
from worker_client import PbtClient
from worker_client.cli import main as pbt_worker

LEGACY = ROOT / "examples" / "legacy"


def test_the_legacy_scripts_run_unchanged_under_pbt_worker(service: LocalService, tmp_path: Path) -> None:
    study = json.loads((LEGACY / "study.json").read_text())
    study["algorithm"].update(populationSize=2, maxGenerations=2, stepsPerTrial=100)
    (tmp_path / "study.json").write_text(json.dumps(study))
    python = sys.executable
    code = pbt_worker([
        "--service", service.address, "--study", "spirals", "--create-study", str(tmp_path / "study.json"),
        "--workdir", str(tmp_path / "runs"), "--checkpoint-regex", r"model_step_(\d+)\.npz",
        "--evaluator", f"{python} {LEGACY / 'evaluate.py'} --checkpoint {{checkpoint}}",
        "--", python, str(LEGACY / "train.py"), "--lr", "{lr}", "--momentum", "{momentum}",
        "--init", "{warm_start}", "--out", "{model_dir}", "--steps", "{steps}",
    ])
    assert code == 0
    with PbtClient(service.address) as client:
        trials = client.list_trials("spirals")
    assert [t.status for t in trials] == [TrialStatus.COMPLETED] * 4
    for trial in trials:
        assert [m.step for m in trial.measurements] == [100 * (trial.generation + 1)]
        assert 0.0 <= trial.measurements[0].metrics["accuracy"] <= 1.0
        assert trial.measurements[0].checkpoint_path.endswith(f"model_step_{100 * (trial.generation + 1)}.npz")


def test_the_wavenet_job_trains_on_espeak_speech(
    service: LocalService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (bash examples/wavenet/setup.sh)")
    monkeypatch.setenv("WAVENET_DATA", str(tmp_path / "data"))
    from examples.wavenet import job

    code = job.job.main([
        "--service", service.address, "--study", "wavenet", "--workdir", str(tmp_path / "runs"), "--max-trials", "1",
    ])

    assert code == 0
    with PbtClient(service.address) as client:
        [trial] = client.list_trials("wavenet")
        assert client.get_study("wavenet").config.parameters[0].name == "learning_rate"
    assert trial.status is TrialStatus.COMPLETED
    assert [m.step for m in trial.measurements] == [50, 100]
    loss = trial.measurements[-1].metrics["loss"]
    assert 0.0 < loss < 6.0
    assert trial.measurements[-1].metrics["bits_per_sample"] == pytest.approx(loss / 0.6931, rel=1e-3)
