"""TLS and mutual TLS on the gRPC port, with real certificates made in the test: clients that
trust the CA (and, under mTLS, present a certificate it signed) are served; a plaintext client, a
client that does not trust the server, and a client certificate from another CA are refused, and
the server keeps serving. The same settings reach every client: the worker's `PbtClient`,
`pbt-results` and `pbt-service serve` itself."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pbt_service.server import RunningServer, ServerSettings, TlsSettings, create_server
from tests import certificates
from tests.certificates import Certificates
from tests.service.conftest import simple_config
from worker_client import PbtClient
from worker_client.settings import ClientSettings

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return certificates.make(tmp_path_factory.mktemp("certs"))


def _server(tmp_path: Path, tls: TlsSettings) -> RunningServer:
    return create_server(ServerSettings(database_url=f"sqlite:///{tmp_path / 'tls.db'}", port=0, tls=tls))


@pytest.fixture
def tls_server(tmp_path: Path, certs: Certificates) -> Iterator[RunningServer]:
    running = _server(tmp_path, TlsSettings(certs.server.certificate, certs.server.key))
    yield running
    running.stop(0)


@pytest.fixture
def mtls_server(tmp_path: Path, certs: Certificates) -> Iterator[RunningServer]:
    running = _server(tmp_path, TlsSettings(certs.server.certificate, certs.server.key, certs.ca.certificate))
    yield running
    running.stop(0)


def _refused(settings: ClientSettings) -> grpc.StatusCode:
    with PbtClient(settings) as client, pytest.raises(grpc.RpcError) as error:
        client.list_studies()
    code: grpc.StatusCode = error.value.code()
    return code


def _settings(port: int, **tls: object) -> ClientSettings:
    return ClientSettings(address=f"localhost:{port}", retry_seconds=0, deadline_seconds=5, **tls)  # type: ignore[arg-type]


def test_tls_serves_clients_that_trust_its_ca_and_refuses_the_rest(
    tls_server: RunningServer, certs: Certificates
) -> None:
    good = _settings(tls_server.port, tls_root_certificates=certs.ca.certificate)
    with PbtClient(good) as client:
        client.create_study("tls", simple_config())
    assert _refused(_settings(tls_server.port)) == grpc.StatusCode.UNAVAILABLE  # plaintext client
    assert _refused(_settings(tls_server.port, tls_root_certificates=certs.other_ca.certificate)) == (
        grpc.StatusCode.UNAVAILABLE  # does not trust the server's certificate
    )
    with PbtClient(good) as client:  # still serving
        assert [s.name for s in client.list_studies()] == ["tls"]


def test_mutual_tls_needs_a_client_certificate_from_its_ca(mtls_server: RunningServer, certs: Certificates) -> None:
    ca = certs.ca.certificate
    good = _settings(mtls_server.port, tls_root_certificates=ca, tls_client_certificate=certs.client.certificate,
                     tls_client_key=certs.client.key)  # fmt: skip
    with PbtClient(good) as client:
        client.create_study("mtls", simple_config())
    refused = [
        _settings(mtls_server.port),  # plaintext
        _settings(mtls_server.port, tls_root_certificates=ca),  # no client certificate
        _settings(mtls_server.port, tls_root_certificates=ca, tls_client_certificate=certs.stranger.certificate,
                  tls_client_key=certs.stranger.key),  # signed by another CA
    ]  # fmt: skip
    for settings in refused:
        assert _refused(settings) == grpc.StatusCode.UNAVAILABLE
    with PbtClient(good) as client:
        assert [s.name for s in client.list_studies()] == ["mtls"]


def test_the_commands_speak_mutual_tls_from_flags_and_variables(tmp_path: Path, certs: Certificates) -> None:
    """`pbt-service serve --tls-cert --tls-key --tls-client-ca`, then `pbt-results` with the
    client's settings as variables (PBT_TLS_CA, PBT_TLS_CERT, PBT_TLS_KEY)."""
    port = _free_port()
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    serve = subprocess.Popen(
        [str(BIN / "pbt-service"), "serve", "--database-url", database, "--port", str(port),
         "--tls-cert", str(certs.server.certificate), "--tls-key", str(certs.server.key),
         "--tls-client-ca", str(certs.ca.certificate)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        client_env = {
            **os.environ, "PBT_SERVICE": f"localhost:{port}", "PBT_TLS_CA": str(certs.ca.certificate),
            "PBT_TLS_CERT": str(certs.client.certificate), "PBT_TLS_KEY": str(certs.client.key),
        }  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            result = subprocess.run([str(BIN / "pbt-results"), "studies", "--format", "json"], env=client_env,
                                    capture_output=True, text=True, timeout=60)  # fmt: skip
            if result.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "[]"
        stranger_env = {**client_env, "PBT_TLS_CERT": str(certs.stranger.certificate),
                        "PBT_TLS_KEY": str(certs.stranger.key), "PBT_SERVICE_RETRY_SECONDS": "0"}  # fmt: skip
        refused = subprocess.run([str(BIN / "pbt-results"), "studies"], env=stranger_env, capture_output=True,
                                 text=True, timeout=60)  # fmt: skip
        assert refused.returncode != 0
        assert "Traceback" not in refused.stderr
        assert serve.poll() is None
    finally:
        serve.terminate()
        output, _ = serve.communicate(timeout=30)
    assert "mutual TLS" in output


def test_half_a_tls_configuration_is_refused_at_start(tmp_path: Path, certs: Certificates) -> None:
    for flags, named in (
        (["--tls-cert", str(certs.server.certificate)], "--tls-key"),
        (["--tls-client-ca", str(certs.ca.certificate)], "--tls-client-ca"),
        (["--tls-cert", str(tmp_path / "missing.crt"), "--tls-key", str(certs.server.key)], "--tls-cert"),
    ):
        result = subprocess.run(
            [str(BIN / "pbt-service"), "serve", "--database-url", f"sqlite:///{tmp_path / 'x.db'}", "--port", "0",
             *flags], capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert named in result.stderr and "Traceback" not in result.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_the_dashboard_reads_a_mutual_tls_service_with_the_same_settings(
    mtls_server: RunningServer, certs: Certificates
) -> None:
    import json
    import urllib.request

    good = _settings(mtls_server.port, tls_root_certificates=certs.ca.certificate,
                     tls_client_certificate=certs.client.certificate, tls_client_key=certs.client.key)  # fmt: skip
    with PbtClient(good) as client:
        client.create_study("seen-over-mtls", simple_config())
    web_port = _free_port()
    env = {**os.environ, "PBT_TLS_CA": str(certs.ca.certificate), "PBT_TLS_CERT": str(certs.client.certificate),
           "PBT_TLS_KEY": str(certs.client.key)}  # fmt: skip
    dashboard = subprocess.Popen(
        [str(BIN / "pbt-dashboard"), "--service", f"localhost:{mtls_server.port}", "--port", str(web_port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/api/studies", timeout=10) as reply:
                    body = json.loads(reply.read())
                break
            except OSError:
                if time.monotonic() > deadline or dashboard.poll() is not None:
                    raise
                time.sleep(0.5)
        assert "seen-over-mtls" in json.dumps(body)
    finally:
        dashboard.terminate()
        dashboard.communicate(timeout=30)
