"""Token auth rejects with UNAUTHENTICATED (reflection included); health checks stay open; an
exposed server without a token warns; undecodable bodies are INVALID_ARGUMENT on every service."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from pbt_service.server import SERVICE_NAME, RunningServer, ServerSettings, create_server, is_loopback
from worker_client import PbtClient

LIST_SERVICES = reflection_pb2.ServerReflectionRequest(list_services="")


def _start(tmp_path: Path, host: str = "127.0.0.1", token: str | None = None) -> RunningServer:
    return create_server(ServerSettings(database_url=f"sqlite:///{tmp_path / 'a.db'}", host=host, port=0,
                                        auth_token=token))  # fmt: skip


def _services(channel: grpc.Channel, token: str | None = None) -> list[str]:
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        iter([LIST_SERVICES]), timeout=10, metadata=metadata
    )
    return [s.name for reply in replies for s in reply.list_services_response.service]


def test_token_is_required_when_configured(tmp_path: Path) -> None:
    running = _start(tmp_path, token="s3cret")
    address = f"127.0.0.1:{running.port}"
    try:
        with PbtClient(address, retry_seconds=0) as anonymous, pytest.raises(grpc.RpcError) as error:
            anonymous.list_studies()
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with (
            PbtClient(address, retry_seconds=0, token="wrong") as wrong,
            pytest.raises(grpc.RpcError) as error,
        ):
            wrong.list_studies()
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with PbtClient(address, token="s3cret") as good:
            assert good.list_studies() == []
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            for token in (None, "wrong"):
                with pytest.raises(grpc.RpcError) as error:
                    _services(channel, token)
                assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert SERVICE_NAME in _services(channel, "s3cret")
    finally:
        running.stop(0)


def test_reflection_is_open_without_auth(tmp_path: Path) -> None:
    running = _start(tmp_path)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            assert SERVICE_NAME in _services(channel)
    finally:
        running.stop(0)


def test_undecodable_bodies_are_invalid_argument_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On the service, health (unary and streaming replies) and reflection (streaming requests)."""
    running = _start(tmp_path)
    body = b"\x0a\xff"  # field 1, length-delimited, its length cut off
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel, caplog.at_level(logging.INFO):
            calls: dict[str, Callable[[str], object]] = {
                f"/{SERVICE_NAME}/GetStudy": lambda p: channel.unary_unary(p)(body, timeout=10),
                "/grpc.health.v1.Health/Check": lambda p: channel.unary_unary(p)(body, timeout=10),
                "/grpc.health.v1.Health/Watch": lambda p: list(channel.unary_stream(p)(body, timeout=10)),
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo":
                    lambda p: list(channel.stream_stream(p)(iter([body]), timeout=10)),
            }  # fmt: skip
            for path, call in calls.items():
                with pytest.raises(grpc.RpcError) as error:
                    call(path)
                assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, path
                assert "request body is not a valid" in (error.value.details() or "")
            assert SERVICE_NAME in _services(channel)  # still serving
    finally:
        running.stop(0)
    lines = [r for r in caplog.records if "undecodable request" in r.getMessage()]
    assert len(lines) == len(calls)
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in lines)
    assert not [r for r in caplog.records if r.name.startswith("grpc")]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("[::1]", True), ("::1", True),
     ("0.0.0.0", False), ("[::]", False), ("", False), ("10.1.2.3", False), ("pbt.example.org", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(("host", "token", "warns"), [("0.0.0.0", None, True), ("0.0.0.0", "t", False),
                                                      ("127.0.0.1", None, False)])  # fmt: skip
def test_serving_every_interface_without_a_token_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, host: str, token: str | None, warns: bool
) -> None:
    with caplog.at_level(logging.WARNING, logger="pbt_service.server"):
        _start(tmp_path, host, token).stop(0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if warns:
        assert len(warnings) == 1 and "without authentication" in warnings[0]
        assert "PBT_AUTH_TOKEN" in warnings[0] and "--host 127.0.0.1" in warnings[0]
    else:
        assert warnings == []
