"""Real servers (in-process, or a subprocess that can be killed and restarted) and the stand-in
training scripts of `scripts/`, for the worker tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from pbt_service.core.types import Trial, TrialStatus
from pbt_service.local import LocalService
from worker_client import PbtClient

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
PYTHON = sys.executable


def subprocess_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LocalService]:
    with LocalService(f"sqlite:///{tmp_path / 'pbt.db'}", retry_after_seconds=0.05) as running:
        yield running


@pytest.fixture
def client(service: LocalService) -> Iterator[PbtClient]:
    with PbtClient(service.address, retry_seconds=5) as c:
        yield c


class ServerProcess:
    """`pbt-service serve` as a subprocess on a fixed port, so it can be killed and restarted."""

    def __init__(self, database_url: str, log_path: Path) -> None:
        self.database_url = database_url
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            PYTHON, "-m", "pbt_service.cli", "serve", "--database-url", self.database_url,
            "--host", "127.0.0.1", "--port", str(self.port), "--retry-after-seconds", "0.05", "--grace-seconds", "0",
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=subprocess_env())
        with PbtClient(self.address, retry_seconds=20) as client:
            client.list_studies()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(f"sqlite:///{tmp_path / 'pbt.db'}", tmp_path / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def evaluator_command(mode: str = "ok") -> str:
    return f"{PYTHON} {SCRIPTS / 'legacy_eval.py'} --checkpoint {{checkpoint}} --mode {mode}"


def command_mode_args(
    address: str,
    study: str,
    workdir: Path,
    *,
    trainer_args: Sequence[str] = (),
    options: Sequence[str] = (),
    evaluator_mode: str = "ok",
) -> list[str]:
    """pbt-worker's argv driving scripts/legacy_train.py with scripts/legacy_eval.py."""
    return [
        "--service", address, "--study", study, "--workdir", str(workdir),
        "--poll-seconds", "0.02", "--settle-seconds", "0", "--service-retry-seconds", "60",
        "--evaluator", evaluator_command(evaluator_mode), *options,
        "--", PYTHON, str(SCRIPTS / "legacy_train.py"),
        "--h", "{h}", "--init", "{warm_start}", "--out", "{model_dir}", *trainer_args,
    ]


def python_mode_args(address: str, study: str, workdir: Path, options: Sequence[str] = ()) -> list[str]:
    """scripts/python_job.py's argv (the same options as pbt-worker's, no command)."""
    return [
        "--service", address, "--study", study, "--workdir", str(workdir), "--poll-seconds", "0.02",
        "--service-retry-seconds", "60", *options,
    ]


PYTHON_JOB = "tests.worker_client.scripts.python_job"


def start_worker(
    args: Sequence[str], log_path: Path, module: str = "worker_client.cli", **env: str
) -> subprocess.Popen[bytes]:
    """A worker process (pbt-worker, or a Job script when `module` names one)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [PYTHON, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT, env=subprocess_env(**env),
            cwd=ROOT,
        )


def wait_for(predicate: object, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def measured_active_trial(client: PbtClient, study: str) -> Trial | None:
    """An ACTIVE trial that has reported at least one measurement, if any."""
    for trial in client.list_trials(study, statuses=[TrialStatus.ACTIVE]):
        if trial.measurements:
            return trial
    return None


def assert_study_invariants(trials: Sequence[Trial], measurements_per_trial: int) -> None:
    """Every trial completed with one measurement per checkpoint, and no trial initiated more
    than one child."""
    assert trials, "no trials"
    assert [t.status for t in trials] == [TrialStatus.COMPLETED] * len(trials), [
        (t.id, t.status, t.status_message) for t in trials
    ]
    assert [len(t.measurements) for t in trials] == [measurements_per_trial] * len(trials)
    initiators = [t.initiator_parent_trial_id for t in trials if t.initiator_parent_trial_id]
    assert len(initiators) == len(set(initiators))
    by_id = {t.id: t for t in trials}
    for trial in trials:
        if trial.parent_trial_id:
            parent = by_id[trial.parent_trial_id]
            assert parent.final_measurement is not None
            assert trial.warm_start_checkpoint_path == parent.final_measurement.checkpoint_path
            assert trial.measurements[0].step == parent.final_measurement.step + 5
