"""The client side of study-scoped tokens: a Job with a worker token runs its own study to the end
(its `create_study(exist_ok=True)` finds the study an admin made), is refused with exit 2 and one
line when the study is not there yet (workers may not create studies), and a reader token reads
only its own studies in `pbt-results` (exit 1, PERMISSION_DENIED, no traceback, no token)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pbt_service.auth import create_token
from pbt_service.core.access import Role
from pbt_service.server import ServerSettings, create_server
from tests.service.conftest import simple_config
from tests.worker_client.conftest import python_mode_args, subprocess_env
from tests.worker_client.scripts import python_job
from worker_client import ClientSettings, Job, PbtClient, TrialStatus

ADMIN = "scoped-admin-secret"


@dataclass
class Service:
    address: str
    worker_token: str
    reader_token: str


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("scoped")
    url = f"sqlite:///{folder / 'pbt.db'}"
    running = create_server(ServerSettings(database_url=url, port=0, auth_token=ADMIN))
    now = datetime.now(timezone.utc)
    worker, _ = create_token(running.storage, "team", Role.WORKER, ["team"], now)
    reader, _ = create_token(running.storage, "team-dashboard", Role.READER, ["team"], now)
    address = f"127.0.0.1:{running.port}"
    with PbtClient(ClientSettings(address=address, token=ADMIN)) as admin:
        admin.create_study("team", simple_config(population=2, max_trials=2))
        admin.create_study("other", simple_config(population=2, max_trials=2))
    try:
        yield Service(address, worker, reader)
    finally:
        running.stop(0)


def test_a_worker_token_runs_its_study_and_may_not_create_one(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PBT_AUTH_TOKEN", service.worker_token)
    job = Job(python_job.train, python_job.evaluate, study_config=simple_config(population=2, max_trials=2))
    assert job.main(python_mode_args(service.address, "team", tmp_path / "runs", ["--quiet"])) == 0
    with PbtClient(ClientSettings(address=service.address, token=ADMIN)) as admin:
        assert [t.status for t in admin.list_trials("team")] == [TrialStatus.COMPLETED] * 2
        assert admin.list_trials("other") == []
    for study in ("new-study", "other"):
        assert job.main(python_mode_args(service.address, study, tmp_path / "runs", ["--quiet"])) == 2


def test_a_reader_token_reads_only_its_own_studies(service: Service) -> None:
    def results(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "worker_client.results_cli", "--service", service.address, *args],
            env=subprocess_env(PBT_AUTH_TOKEN=service.reader_token, PBT_SERVICE_RETRY_SECONDS="0"),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    listed = results("studies", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert '"team"' in listed.stdout and '"other"' not in listed.stdout
    refused = results("trials", "other")
    assert refused.returncode == 1
    assert "PERMISSION_DENIED" in refused.stderr and "'other'" in refused.stderr
    assert "Traceback" not in refused.stderr and service.reader_token not in refused.stderr
    paused = results("pause", "team")
    assert paused.returncode == 1 and "PERMISSION_DENIED" in paused.stderr
