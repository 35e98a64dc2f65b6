"""Command mode end to end: `pbt-worker` drives a script that knows nothing of PBT against a real
server, and everything the script or its evaluator does wrong ends the trial, not the worker."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pbt_service.core.types import (
    AlgorithmConfig,
    Condition,
    Goal,
    Objective,
    ParameterSpec,
    ParameterType,
    StudyConfig,
    TrialStatus,
)
from pbt_service.local import LocalService
from tests.service.conftest import simple_config
from tests.worker_client.conftest import assert_study_invariants, command_mode_args
from worker_client import PbtClient
from worker_client.cli import main


def test_a_study_runs_to_the_end_with_progress_lines(
    service: LocalService, client: PbtClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client.create_study("cmd", simple_config(population=3, max_generations=3, seed=3))

    code = main(command_mode_args(service.address, "cmd", tmp_path / "runs"))

    assert code == 0
    trials = client.list_trials("cmd")
    assert len(trials) == 9
    assert_study_invariants(trials, measurements_per_trial=2)
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[w0]")]
    assert len(progress) == 18
    assert progress[0].startswith(f"[w0] trial {trials[0].id} gen 0 step 5 score=")


def test_the_trial_reaches_the_script_as_arguments_variables_and_a_json_file(
    service: LocalService, client: PbtClient, tmp_path: Path
) -> None:
    config = StudyConfig(
        parameters=(
            ParameterSpec("h", ParameterType.FLOAT, low=0.1, high=0.9),
            ParameterSpec("opt", ParameterType.CATEGORICAL, values=("sgd", "adam")),
            ParameterSpec("momentum", ParameterType.FLOAT, low=0.0, high=0.9, condition=Condition("opt", ("sgd",))),
            ParameterSpec("width", ParameterType.DISCRETE, values=(16.0, 32.0)),
        ),
        objectives=(Objective("score", Goal.MAXIMIZE),),
        algorithm=AlgorithmConfig(population_size=4, max_generations=2, steps_per_trial=10, seed=5),
    )
    client.create_study("args", config)
    record = tmp_path / "record.jsonl"
    trainer_args = [
        "--record", str(record), "--", "{opt}", "m={momentum}", "w={width:.0f}", "{trial_id}/{generation}/{steps}",
        "{hparams_json}",
    ]
    args = command_mode_args(service.address, "args", tmp_path / "runs", trainer_args=trainer_args)

    assert main(args) == 0

    calls = [json.loads(line) for line in record.read_text().splitlines()]
    trials = {t.id: t for t in client.list_trials("args")}
    assert len(calls) == len(trials) == 8
    for call in calls:
        env = call["env"]
        trial = trials[int(env["PBT_TRIAL_ID"])]
        hp = trial.hparams
        extras = call["argv"][call["argv"].index("--") + 1:]
        momentum = "" if "momentum" not in hp else repr(hp["momentum"])
        assert extras[:4] == [
            hp["opt"], f"m={momentum}", f"w={int(hp['width'])}", f"{trial.id}/{trial.generation}/10"
        ]
        assert call["argv"][call["argv"].index("--init") + 1] == trial.warm_start_checkpoint_path
        assert env["PBT_WARM_START"] == trial.warm_start_checkpoint_path
        assert env["PBT_STEPS"] == "10" and env["PBT_GENERATION"] == str(trial.generation)
        assert env["PBT_HP_H"] == repr(hp["h"]) and env["PBT_HP_WIDTH"] == repr(hp["width"])
        assert ("PBT_HP_MOMENTUM" in env) == ("momentum" in hp)
        document = json.loads(Path(extras[4]).read_text())
        assert extras[4] == env["PBT_HPARAMS_JSON"]
        assert document["hparams"] == dict(hp) and document["model_dir"] == env["PBT_MODEL_DIR"]
        assert document["warm_start"] == trial.warm_start_checkpoint_path


def test_a_crashing_trainer_fails_its_trial_with_exit_code_and_output_and_the_worker_goes_on(
    service: LocalService, client: PbtClient, tmp_path: Path
) -> None:
    client.create_study("crash", simple_config(population=2, max_generations=2))
    args = command_mode_args(
        service.address, "crash", tmp_path / "runs", trainer_args=["--crash-once", str(tmp_path / "crashed")]
    )

    assert main(args) == 0

    trials = client.list_trials("crash")
    assert [t.status for t in trials] == [TrialStatus.FAILED] + [TrialStatus.COMPLETED] * 4
    message = trials[0].status_message
    assert "exited with code 3" in message
    assert "loading data..." in message and "RuntimeError: boom: CUDA out of memory" in message
    assert "legacy_train.py" in message


def test_an_unknown_placeholder_is_refused_before_any_trial(
    service: LocalService, client: PbtClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client.create_study("typo", simple_config(population=2, max_generations=1))
    args = command_mode_args(service.address, "typo", tmp_path / "runs", trainer_args=["--lr", "{learning_rate}"])

    assert main(args) == 2

    error = capsys.readouterr().err
    assert "unknown placeholder(s) {learning_rate}" in error and "known: " in error and "lr" in error
    assert client.list_trials("typo") == []


def test_a_trainer_that_writes_elsewhere_fails_its_trial_saying_so(
    service: LocalService, client: PbtClient, tmp_path: Path
) -> None:
    client.create_study("nowhere", simple_config(population=2, max_trials=1))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = command_mode_args(service.address, "nowhere", tmp_path / "runs", trainer_args=["--write-to", str(elsewhere)])

    assert main(args) == 0

    [trial] = client.list_trials("nowhere")
    assert trial.status is TrialStatus.FAILED
    assert "the trainer wrote no checkpoint into" in trial.status_message
    assert "trainer.log" in trial.status_message  # it lists what the folder does hold


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("garbage", "non-number for metric 'score'"),
        ("missing", "left out objective metric(s) 'score'"),
        ("notjson", "is not a JSON object of metrics: 'score: 0.5'"),
        ("crash", "evaluation data not found"),
    ],
)
def test_a_bad_evaluator_fails_the_trial_not_the_worker(
    service: LocalService, client: PbtClient, tmp_path: Path, mode: str, expected: str
) -> None:
    client.create_study("bad", simple_config(population=2, max_trials=2))

    assert main(command_mode_args(service.address, "bad", tmp_path / "runs", evaluator_mode=mode)) == 0

    trials = client.list_trials("bad")
    assert [t.status for t in trials] == [TrialStatus.FAILED, TrialStatus.FAILED]
    assert all(expected in t.status_message for t in trials), trials[0].status_message


def test_nan_metrics_record_a_diverged_trial_not_a_failure(
    service: LocalService, client: PbtClient, tmp_path: Path
) -> None:
    client.create_study("nan", simple_config(population=2, max_trials=2))
    args = command_mode_args(
        service.address, "nan", tmp_path / "runs", evaluator_mode="nan", trainer_args=["--sleep", "0.2"]
    )

    assert main(args) == 0

    trials = client.list_trials("nan")
    assert [t.status for t in trials] == [TrialStatus.COMPLETED, TrialStatus.COMPLETED]
    for trial in trials:
        assert trial.final_measurement is not None and math.isnan(trial.final_measurement.metrics["score"])
        assert len(trial.measurements) == 1  # training stopped at the first diverged checkpoint


def test_limits_quiet_and_checkpoint_collection(
    service: LocalService, client: PbtClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client.create_study("limits", simple_config(population=4, max_generations=2))
    options = ["--max-trials", "2", "--quiet", "--keep-checkpoints", "1"]
    args = command_mode_args(
        service.address, "limits", tmp_path / "runs", options=options, trainer_args=["--checkpoints", "3"]
    )

    assert main(args) == 0

    assert "[w0]" not in capsys.readouterr().out
    trials = client.list_trials("limits")
    assert [t.status for t in trials] == [TrialStatus.COMPLETED] * 2
    for trial in trials:
        assert trial.final_measurement is not None and len(trial.measurements) == 3
        model_dir = Path(trial.final_measurement.checkpoint_path).parent
        assert sorted(p.name for p in model_dir.glob("ckpt-*")) == ["ckpt-000000015"]


def test_max_time_stops_the_running_trial_and_hands_it_back(
    service: LocalService, client: PbtClient, tmp_path: Path
) -> None:
    client.create_study("timed", simple_config(population=2, max_generations=1))
    args = command_mode_args(
        service.address, "timed", tmp_path / "runs", options=["--max-time", "1"],
        trainer_args=["--sleep", "0.4", "--checkpoints", "20"],
    )

    assert main(args) == 0

    [trial] = client.list_trials("timed")
    assert trial.status is TrialStatus.STOPPED and "time limit" in trial.status_message
    assert (tmp_path / "runs" / "timed" / f"trial-{trial.id:07d}" / "got-sigterm").exists()


def test_checkpoints_with_their_own_names_written_in_place_are_read_once_settled(
    service: LocalService, client: PbtClient, tmp_path: Path
) -> None:
    client.create_study("named", simple_config(population=2, max_trials=2))
    options = ["--checkpoint-regex", r"model-(\d+)\.json", "--settle-seconds", "0.3"]
    trainer_args = ["--name", "model-{{step}}.json", "--slow-write", "0.15", "--checkpoints", "3"]
    args = command_mode_args(service.address, "named", tmp_path / "runs", options=options, trainer_args=trainer_args)

    assert main(args) == 0

    trials = client.list_trials("named")
    assert [t.status for t in trials] == [TrialStatus.COMPLETED] * 2, trials[0].status_message
    for trial in trials:
        assert [m.step for m in trial.measurements] == [5, 10, 15]
        assert [Path(m.checkpoint_path).name for m in trial.measurements] == [
            "model-5.json", "model-10.json", "model-15.json"
        ]
