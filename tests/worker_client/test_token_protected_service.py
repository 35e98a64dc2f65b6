"""Against a service that wants a token: `run_workers`, `Job.main` and every `pbt-results`
subcommand get it from the one client settings object (flag or `PBT_AUTH_TOKEN`); without it
`pbt-results` says UNAUTHENTICATED and exits non-zero without a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbt_service.server import ServerSettings, create_server
from tests.service.conftest import simple_config
from tests.worker_client.conftest import ROOT, python_mode_args, subprocess_env
from tests.worker_client.scripts import python_job
from tests.worker_client.test_worker_end_to_end import evaluate, train
from worker_client import ClientSettings, Job, PbtClient, TrialStatus, run_workers
from worker_client.results import AccessDenied, connect
from worker_client.results_cli import main as results_main

TOKEN = "s3cret"
TRAINER = "tests.worker_client.test_worker_end_to_end:train"
EVALUATOR = "tests.worker_client.test_worker_end_to_end:evaluate"


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A token-protected service holding study 'locked', run to the end by `run_workers`."""
    folder = tmp_path_factory.mktemp("locked")
    settings = ServerSettings(database_url=f"sqlite:///{folder / 'pbt.db'}", host="127.0.0.1", port=0,
                              auth_token=TOKEN)
    running = create_server(settings)
    where = f"127.0.0.1:{running.port}"
    try:
        client = ClientSettings(address=where, token=TOKEN, retry_seconds=0)
        with PbtClient(client) as c:
            c.create_study("locked", simple_config(population=2, max_generations=2, seed=1))
        assert run_workers(client, "locked", train, evaluate, num_workers=2, workdir=folder / "runs") == 4
        yield where
    finally:
        running.stop(0)


def subcommands(tmp_path: Path, trial_id: int) -> list[list[str]]:
    schedule = tmp_path / "schedule.json"
    return [
        ["studies"],
        ["best", "locked", "--top", "1"],
        ["trials", "locked", "--status", "completed", "--format", "csv"],
        ["trial", str(trial_id)],
        ["lineage", str(trial_id), "--format", "json"],
        ["export", "locked", "--out", str(tmp_path / "export")],
        ["schedule", str(trial_id), "--save", str(schedule)],
        ["gc", "locked", "--dry-run", "--root", str(tmp_path)],
        ["replay", str(schedule), "--trainer", TRAINER, "--evaluator", EVALUATOR, "--workdir", str(tmp_path / "re")],
    ]


def best_trial(address: str) -> int:
    with PbtClient(address, token=TOKEN) as client:
        return max(t.id for t in client.list_trials("locked", statuses=[TrialStatus.COMPLETED]))


def test_every_results_subcommand_takes_the_token_from_the_flag(
    address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PBT_AUTH_TOKEN", raising=False)
    for argv in subcommands(tmp_path, best_trial(address)):
        assert results_main(["--service", address, "--token", TOKEN, *argv]) == 0, (argv, capsys.readouterr())
    out = capsys.readouterr().out
    assert re.search(r"^locked\s+done\s+4\s", out, re.MULTILINE)
    assert (tmp_path / "export" / "study.json").is_file()
    assert "would delete" in out and "step " in out


def test_every_results_subcommand_takes_the_token_from_the_environment(
    address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PBT_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("PBT_SERVICE", address)
    for argv in subcommands(tmp_path, best_trial(address)):
        assert results_main(argv) == 0, (argv, capsys.readouterr())
    assert "trial " in capsys.readouterr().out


@pytest.mark.parametrize("token", [None, "wrong"])
def test_results_without_the_right_token_say_unauthenticated(address: str, token: str | None) -> None:
    env = {k: v for k, v in subprocess_env().items() if not k.startswith("PBT_")}
    for argv in (["studies"], ["best", "locked"], ["trials", "locked"], ["lineage", "1"], ["schedule", "1"],
                 ["gc", "locked"]):
        flags = ["--service", address, "--service-retry-seconds", "0", *(["--token", token] if token else [])]
        done = subprocess.run([sys.executable, "-m", "worker_client.results_cli", *flags, *argv],
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
        assert done.returncode == 1, done.stderr
        assert "UNAUTHENTICATED" in done.stderr and "--token or PBT_AUTH_TOKEN" in done.stderr
        assert "refused the token" in done.stderr and (token is None or token not in done.stderr)
        assert "Traceback" not in done.stderr


def test_a_job_takes_the_token_from_the_environment(
    address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = Job(python_job.train, python_job.evaluate, study_config=simple_config(population=2, max_trials=2))
    args = python_mode_args(address, "job-with-token", tmp_path / "runs", ["--quiet"])
    monkeypatch.delenv("PBT_AUTH_TOKEN", raising=False)
    assert job.main(args) == 2  # refused before any trial: the service wants a token
    monkeypatch.setenv("PBT_AUTH_TOKEN", TOKEN)
    assert job.main(args) == 0
    with PbtClient(address, token=TOKEN) as client:
        assert [t.status for t in client.list_trials("job-with-token")] == [TrialStatus.COMPLETED] * 2


@pytest.mark.parametrize("token", [None, "wrong"])
def test_the_results_api_says_the_service_refused_the_token(address: str, token: str | None) -> None:
    with connect(ClientSettings(address=address, token=token, retry_seconds=0)) as results:
        with pytest.raises(AccessDenied, match="refused the token") as refused:
            results.studies()
    assert TOKEN not in str(refused.value)
    with connect(ClientSettings(address=address, token=TOKEN, retry_seconds=0)) as results:
        assert "locked" in [s.name for s in results.studies()]
        assert results.study("locked").summary().by_status["completed"] == 4
