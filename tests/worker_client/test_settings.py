"""Client settings: read once from flags and `PBT_*` variables (flags win), checked with messages
that name the flag or variable, and refused by the commands with exit code 2 and no traceback."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from tests.worker_client.conftest import ROOT, subprocess_env
from worker_client import ClientSettings, PbtClient, SettingsError
from worker_client.settings import add_client_arguments, client_settings


def settings(argv: list[str], env: dict[str, str], **defaults: object) -> ClientSettings:
    parser = argparse.ArgumentParser()
    add_client_arguments(parser)
    return client_settings(parser.parse_args(argv), env, **defaults)  # type: ignore[arg-type]


def test_variables_fill_in_and_flags_win(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked until a channel opens")
    env = {"PBT_SERVICE": "env:1", "PBT_AUTH_TOKEN": "from-env", "PBT_DEADLINE_SECONDS": "4",
           "PBT_SERVICE_RETRY_SECONDS": "0", "PBT_TLS_CA": str(ca)}

    from_env = settings([], env)
    assert from_env == ClientSettings(address="env:1", token="from-env", tls_root_certificates=ca,
                                      deadline_seconds=4.0, retry_seconds=0.0)
    assert from_env.uses_tls

    from_flags = settings(["--service", "flag:2", "--token", "from-flag", "--deadline-seconds", "7"], env)
    assert (from_flags.address, from_flags.token, from_flags.deadline_seconds) == ("flag:2", "from-flag", 7.0)


def test_defaults_come_from_the_command() -> None:
    plain = settings([], {}, default_address="localhost:50051", retry_seconds=12.0)
    assert plain == ClientSettings(address="localhost:50051", retry_seconds=12.0)
    assert not plain.uses_tls


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {}, "no service address: give --service"),
        (["--service", "a:1", "--deadline-seconds", "-1"], {}, "--deadline-seconds: must be a finite number > 0"),
        (["--service", "a:1"], {"PBT_DEADLINE_SECONDS": "soon"}, "PBT_DEADLINE_SECONDS: expected a number"),
        (["--service", "a:1"], {"PBT_SERVICE_RETRY_SECONDS": "-3"}, "PBT_SERVICE_RETRY_SECONDS: must be"),
        (["--service", "a:1", "--tls-ca", "/no/such/ca.pem"], {}, "--tls-ca: no such file: /no/such/ca.pem"),
        (["--service", "a:1"], {"PBT_TLS_CERT": "/no/cert.pem"}, "PBT_TLS_CERT: no such file"),
        (["--service", "a:1"], {"PBT_TLS": "maybe"}, "PBT_TLS: expected 1 or 0"),
    ],
)
def test_bad_values_name_their_flag_or_variable(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        settings(argv, env)


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(SettingsError, match="give both or neither"):
        settings(["--service", "a:1", "--tls-cert", str(cert)], {})


def test_the_client_takes_settings_or_an_address_with_overrides() -> None:
    base = ClientSettings(address="127.0.0.1:1", token="t", deadline_seconds=3.0)
    with PbtClient(base) as client:
        assert client.settings is base
    with PbtClient(base, retry_seconds=0, timeout_seconds=1.5) as client:
        assert (client.settings.token, client.settings.retry_seconds, client.settings.deadline_seconds) == (
            "t", 0.0, 1.5)
    with PbtClient("127.0.0.1:1", token="k") as client:
        assert client.settings == ClientSettings(address="127.0.0.1:1", token="k")


@pytest.mark.parametrize(
    ("module", "argv", "env", "message"),
    [
        ("worker_client.results_cli", ["--deadline-seconds", "0", "studies"], {}, "--deadline-seconds: must be"),
        ("worker_client.results_cli", ["studies"], {"PBT_TLS_CA": "/no/ca.pem"}, "PBT_TLS_CA: no such file"),
        ("worker_client.cli", ["--service", "a:1", "--study", "s", "--", "true"], {"PBT_DEADLINE_SECONDS": "-2"},
         "PBT_DEADLINE_SECONDS: must be"),
        ("worker_client.cli", ["--study", "s", "--", "true"], {}, "no service address"),
    ],
)
def test_commands_refuse_bad_settings_with_exit_code_2_and_no_traceback(
    module: str, argv: list[str], env: dict[str, str], message: str
) -> None:
    clean = {k: v for k, v in subprocess_env(**env).items() if not k.startswith("PBT_") or k in env}
    done = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, env=clean,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
