"""Workers as separate processes against a real server, in both modes: SIGTERM mid-trial, a worker
killed and restarted, and the service killed and restarted while workers run."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from pbt_service.core.types import TrialStatus
from pbt_service.local import LocalService
from tests.service.conftest import simple_config
from tests.worker_client.conftest import (
    PYTHON_JOB,
    ServerProcess,
    assert_study_invariants,
    command_mode_args,
    measured_active_trial,
    python_mode_args,
    start_worker,
    wait_for,
)
from worker_client import PbtClient

MODES = ["command", "python"]


def worker_args(mode: str, address: str, study: str, workdir: Path, options: list[str]) -> tuple[list[str], str]:
    """(argv, module) of a worker process in `mode`."""
    if mode == "command":
        return command_mode_args(address, study, workdir, options=options), "worker_client.cli"
    return python_mode_args(address, study, workdir, options), PYTHON_JOB


def process_gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" in status.read_text()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stubborn", [False, True], ids=["obeys", "ignores-the-stop"])
def test_sigterm_mid_trial_stops_the_trial_cleanly_and_hands_it_back(
    service: LocalService, client: PbtClient, tmp_path: Path, mode: str, stubborn: bool
) -> None:
    client.create_study("term", simple_config(population=2, max_generations=2))
    args, module = worker_args(mode, service.address, "term", tmp_path / "runs", ["--grace-seconds", "0.5"])
    if stubborn and mode == "command":
        args.append("--ignore-sigterm")  # a flag of the trainer script, after the command's own
    env = {"FAKE_SLEEP": "0.2", "FAKE_CHECKPOINTS": "50", **({"FAKE_IGNORE_STOP": "1"} if stubborn else {})}
    worker = start_worker(args, tmp_path / "worker.log", module, **env)
    try:
        wait_for(lambda: measured_active_trial(client, "term") is not None, what="a measured trial")
        trial = measured_active_trial(client, "term")
        assert trial is not None
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    log = (tmp_path / "worker.log").read_text()

    stopped = client.get_trial(trial.id)
    assert stopped.status is TrialStatus.STOPPED, log
    assert stopped.status_message == "worker received SIGTERM"
    model_dir = tmp_path / "runs" / "term" / f"trial-{trial.id:07d}"
    marker = model_dir / ("got-sigterm" if mode == "command" else "got-stop")
    assert marker.exists(), log
    assert process_gone(int(marker.read_text()))
    assert "received SIGTERM" in log
    if stubborn:
        assert ("killing it" if mode == "command" else "ignored the stop request") in log
    else:
        assert "stopped and handed back" in log
    # The reproduction slot went back to the service: another worker gets generation 0 again.
    replacement = client.get_new_suggestion("term", "someone-else").trials
    assert [t.generation for t in replacement] == [0]


def test_a_worker_killed_mid_trial_and_restarted_gets_its_trial_back(
    service: LocalService, client: PbtClient, tmp_path: Path
) -> None:
    client.create_study("resume", simple_config(population=2, max_generations=1))
    record = tmp_path / "record.jsonl"
    args = command_mode_args(
        service.address, "resume", tmp_path / "runs", options=["--worker-name", "gpu7"],
        trainer_args=["--checkpoints", "3", "--record", str(record)],
    )
    first = start_worker(args, tmp_path / "first.log", FAKE_SLEEP="0.5")
    try:
        wait_for(lambda: measured_active_trial(client, "resume") is not None, what="a measured trial")
        trial = measured_active_trial(client, "resume")
        assert trial is not None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    orphan = json.loads(record.read_text().splitlines()[0])["pid"]
    wait_for(lambda: process_gone(orphan), timeout=5, what="the trainer to die with its worker")

    second = start_worker(args, tmp_path / "second.log", FAKE_SLEEP="0")
    assert second.wait(timeout=20) == 0, (tmp_path / "second.log").read_text()

    identity = (tmp_path / "runs" / ".pbt-workers" / socket.gethostname() / "gpu7.id").read_text().strip()
    trials = client.list_trials("resume")
    assert [t.status for t in trials] == [TrialStatus.COMPLETED, TrialStatus.COMPLETED]
    resumed = client.get_trial(trial.id)
    assert resumed.worker_id == trial.worker_id == identity
    assert [m.step for m in resumed.measurements] == [5, 10, 15]
    assert "was already this worker's" in (tmp_path / "second.log").read_text()


@pytest.mark.parametrize("mode", MODES)
def test_workers_ride_out_a_restart_of_the_service(tmp_path: Path, mode: str) -> None:
    server = ServerProcess(f"sqlite:///{tmp_path / 'pbt.db'}", tmp_path / "server.log")
    server.start()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        with PbtClient(server.address, retry_seconds=30) as client:
            client.create_study("restart", simple_config(population=4, max_generations=4, seed=11))
            args, module = worker_args(mode, server.address, "restart", tmp_path / "runs", [])
            workers = [
                start_worker(args, tmp_path / f"worker{i}.log", module, FAKE_SLEEP="0.1") for i in range(2)
            ]
            wait_for(
                lambda: len(client.list_trials("restart", statuses=[TrialStatus.COMPLETED])) >= 3,
                what="some completed trials",
            )
            server.kill()
            time.sleep(1.0)
            server.start()
            for worker in workers:
                assert worker.wait(timeout=40) == 0
            trials = client.list_trials("restart")
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        server.stop()
    logs = "".join((tmp_path / f"worker{i}.log").read_text() for i in range(2))
    assert len(trials) == 16, logs
    assert_study_invariants(trials, measurements_per_trial=2)
    assert "unreachable" in logs and "reachable again" in logs
