"""`pbt-service serve` as a process: serves on loopback by default, refuses bad flags, shuts down
cleanly on SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pbt_service.cli import parser
from tests.service.conftest import simple_config
from tests.worker_client.conftest import ROOT
from worker_client import PbtClient


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_then_sigterm_exits_cleanly_and_keeps_the_data(tmp_path: Path) -> None:
    """Without --host: the default binds loopback, so no warning about an unprotected service."""
    port = _free_port()
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    command = [sys.executable, "-m", "pbt_service.cli", "serve", "--database-url", url,
               "--port", str(port), "--grace-seconds", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with PbtClient(f"127.0.0.1:{port}", retry_seconds=20) as client:
            client.create_study("cli", simple_config())
            trial = client.get_new_suggestion("cli", "w").trials[0]
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        output, _ = process.communicate(timeout=15)
        assert process.returncode == 0, output
        assert time.monotonic() - started < 10
        assert "shutting down" in output
        assert f"listening on 127.0.0.1:{port}" in output and "UNPROTECTED" not in output
    finally:
        process.kill()
    restarted = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with PbtClient(f"127.0.0.1:{port}", retry_seconds=20) as client:
            assert client.get_trial(trial.id).study == "cli"
    finally:
        restarted.terminate()
        restarted.wait(timeout=15)


def test_bad_flags_are_rejected_before_serving() -> None:
    result = subprocess.run([sys.executable, "-m", "pbt_service.cli", "serve", "--lease-seconds", "-1"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "--lease-seconds" in result.stderr


def test_serve_binds_loopback_unless_told_otherwise() -> None:
    assert parser().parse_args(["serve"]).host == "127.0.0.1"
    assert parser().parse_args(["serve", "--host", "0.0.0.0"]).host == "0.0.0.0"


def test_a_missing_database_directory_is_named_and_nothing_is_created(tmp_path: Path) -> None:
    missing = tmp_path / "runs" / "legacy"
    for command in (["serve", "--port", "0"], ["migrate"]):
        done = subprocess.run(
            [sys.executable, "-m", "pbt_service.cli", *command, "--database-url", f"sqlite:///{missing}/pbt.db"],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )
        assert done.returncode == 2, done.stderr
        assert f"the directory {missing} does not exist; create it first (mkdir -p {missing})" in done.stderr
        assert "Traceback" not in done.stderr and not (tmp_path / "runs").exists()
