"""`pbt-service serve` as a process: serves on loopback by default, refuses bad flags, shuts down
cleanly on SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pbt_service.cli import parser, server_settings
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
    assert server_settings(parser().parse_args(["serve"]), {}).host == "127.0.0.1"
    assert server_settings(parser().parse_args(["serve", "--host", "0.0.0.0"]), {}).host == "0.0.0.0"
    assert server_settings(parser().parse_args(["serve"]), {"PBT_HOST": "0.0.0.0"}).host == "0.0.0.0"
    assert server_settings(parser().parse_args(["serve", "--host", "::1"]), {"PBT_HOST": "0.0.0.0"}).host == "::1"


def test_every_setting_comes_from_its_flag_or_its_variable_and_a_bad_one_is_named() -> None:
    """Each option of SERVE_OPTIONS: its variable sets it, its flag wins over the variable, and a
    bad value from either is refused naming the flag or the variable."""
    import argparse

    from pbt_service.options import SERVE_OPTIONS, OptionError, resolve

    parsed = vars(parser().parse_args(["serve"]))
    assert all(option.dest in parsed for option in SERVE_OPTIONS)
    samples = {"--port": ("50070", "50071", "70000"), "--log-format": ("json", "text", "xml"),
               "--max-workers": ("3", "4", "0"), "--lease-seconds": ("5", "6", "-1"),
               "--require-token": ("1", None, "maybe")}  # fmt: skip
    by_flag = {option.flag: option for option in SERVE_OPTIONS}
    for flag, (from_env, from_flag, bad) in samples.items():
        option = by_flag[flag]
        env_value = resolve(argparse.Namespace(), [option], {option.variable: from_env})[option.dest]
        assert env_value == option.parse(from_env)
        if from_flag is not None:
            args = parser().parse_args(["serve", flag, from_flag])
            assert resolve(args, [option], {option.variable: from_env})[option.dest] == option.parse(from_flag)
        with pytest.raises(OptionError, match=option.variable):
            resolve(argparse.Namespace(), [option], {option.variable: bad})
        if not option.switch:
            with pytest.raises(OptionError, match=flag):
                resolve(parser().parse_args(["serve", flag, bad]), [option], {})


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
