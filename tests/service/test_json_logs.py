"""JSON logs of a real server: one object a line, the call's fields on every line it logs, the
client's request id echoed, tokens never written."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from pbt_service.api.v1 import pbt_service_pb2 as pb
from pbt_service.api.v1 import pbt_service_pb2_grpc
from pbt_service.controller import Controller, ServiceSettings
from pbt_service.observability.context import CallFields, bound
from pbt_service.observability.logs import configure_logging
from pbt_service.server import RunningServer, ServerSettings, create_server
from tests.fake_clock import FakeClock
from tests.service.conftest import simple_config
from worker_client import PbtClient

TOKEN = "pbt-secret-token-0123456789"
LEASE = 60.0
GET_STUDY = "/pbt_service.api.v1.PbtService/GetStudy"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """The root logger writing JSON into a string, restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


@pytest.fixture
def running(tmp_path: Path, clock: FakeClock, log_stream: io.StringIO) -> Iterator[RunningServer]:
    settings = ServerSettings(
        database_url=f"sqlite:///{tmp_path / 'pbt.db'}", port=0, auth_token=TOKEN, health_check_seconds=3600,
        service=ServiceSettings(lease_seconds=LEASE, retry_after_seconds=0.01),
    )  # fmt: skip
    server = create_server(settings, clock=clock)
    yield server
    server.stop(0)


@pytest.fixture
def client(running: RunningServer) -> Iterator[PbtClient]:
    with PbtClient(f"127.0.0.1:{running.port}", timeout_seconds=10, retry_seconds=0, token=TOKEN) as c:
        yield c


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line, parsed: a line that is not one JSON object fails the test."""
    lines = stream.getvalue().splitlines()
    assert lines, "nothing was logged"
    parsed = [json.loads(line) for line in lines]
    for record in parsed:
        assert isinstance(record, dict) and {"time", "level", "logger", "message"} <= record.keys(), record
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", record["time"]), record
    return parsed


def metadata(**pairs: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {TOKEN}"), *((k.replace("_", "-"), v) for k, v in pairs.items()))


def test_lines_carry_the_call_and_never_the_token(
    running: RunningServer, client: PbtClient, clock: FakeClock, log_stream: io.StringIO
) -> None:
    client.create_study("logged", simple_config(2))
    trial = client.get_new_suggestion("logged", "w1").trials[0]
    clock.advance(LEASE + 1)  # w1's lease lapses: w2's suggestion stops its trial, and logs that
    client.get_new_suggestion("logged", "w2")
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        with pytest.raises(grpc.RpcError) as refused:  # an undecodable body: logged as a WARNING
            channel.unary_unary(GET_STUDY)(b"\xff\xff", metadata=metadata(x_request_id="client-id-42"), timeout=10)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError):  # a wrong token, sent in the clear: refused, never logged
            pbt_service_pb2_grpc.PbtServiceStub(channel).GetStudy(
                pb.GetStudyRequest(name="logged"), metadata=(("authorization", "Bearer wrong-token-55"),), timeout=10
            )
    assert dict(refused.value.initial_metadata())["x-request-id"] == "client-id-42"

    logged = records(log_stream)
    created = next(r for r in logged if r["message"] == "created study logged")
    assert created["method"] == "CreateStudy" and created["study"] == "logged"
    assert re.fullmatch(r"[0-9a-f]{32}", created["request_id"])
    assert created["peer"].startswith("ipv4:127.0.0.1:")
    expired = next(r for r in logged if "leases expired" in r["message"])
    assert (expired["method"], expired["study"], expired["level"]) == ("GetNewSuggestion", "logged", "INFO")
    assert str(trial.id) in expired["message"] and expired["request_id"] != created["request_id"]
    undecodable = next(r for r in logged if r["message"].startswith("undecodable request"))
    assert (undecodable["level"], undecodable["method"], undecodable["request_id"]) == (
        "WARNING", "GetStudy", "client-id-42"
    )
    assert "study" not in undecodable  # unknown: the body did not parse
    text = log_stream.getvalue()
    assert TOKEN not in text and "wrong-token-55" not in text


def test_the_request_id_is_echoed_or_made(running: RunningServer, client: PbtClient) -> None:
    client.create_study("echo", simple_config(2))
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = pbt_service_pb2_grpc.PbtServiceStub(channel)
        request = pb.GetStudyRequest(name="echo")
        _, call = stub.GetStudy.with_call(request, metadata=metadata(x_request_id="trace 7/abc"), timeout=10)
        assert dict(call.initial_metadata())["x-request-id"] == "trace 7/abc"
        for bad in ("x" * 129, ""):  # too long, empty: replaced by a fresh id
            _, call = stub.GetStudy.with_call(request, metadata=metadata(x_request_id=bad), timeout=10)
            assert re.fullmatch(r"[0-9a-f]{32}", dict(call.initial_metadata())["x-request-id"])
        _, first = stub.GetStudy.with_call(request, metadata=metadata(), timeout=10)
        _, second = stub.GetStudy.with_call(request, metadata=metadata(), timeout=10)
        assert dict(first.initial_metadata())["x-request-id"] != dict(second.initial_metadata())["x-request-id"]


def test_an_internal_error_is_one_line_with_its_request_id(
    running: RunningServer, log_stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Controller, name: str, *, timeout_s: float | None = None) -> None:
        raise RuntimeError("a bug\nspanning lines")

    monkeypatch.setattr(Controller, "get_study", broken)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        with pytest.raises(grpc.RpcError) as failed:
            pbt_service_pb2_grpc.PbtServiceStub(channel).GetStudy(
                pb.GetStudyRequest(name="broken"), metadata=metadata(x_request_id="req-internal"), timeout=10
            )
    assert failed.value.code() is grpc.StatusCode.INTERNAL
    error_id = re.search(r"internal error (\w+)", failed.value.details() or "")
    assert error_id is not None
    line = next(r for r in records(log_stream) if r["message"] == f"internal error {error_id.group(1)}")
    assert (line["level"], line["request_id"], line["method"], line["study"]) == (
        "ERROR", "req-internal", "GetStudy", "broken"
    )
    assert "RuntimeError: a bug\nspanning lines" in line["exc_info"] and "Traceback" in line["exc_info"]


def test_json_formatter_outside_calls_and_text_format() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging("DEBUG", "json", stream=stream)
        logging.getLogger("pbt.test").debug("outside any call; Bearer abc.def stays secret")
        with bound(CallFields("rid-1", "Heartbeat", trial_id=7)):
            logging.getLogger("pbt.test").info("inside %s", "a call")
        configure_logging("WARNING", "text", stream=stream)
        logging.getLogger("pbt.test").info("filtered out")
        logging.getLogger("pbt.test").warning("plain")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
    first, second, third = stream.getvalue().splitlines()
    outside, inside = json.loads(first), json.loads(second)
    assert outside["message"] == "outside any call; Bearer [redacted] stays secret" and "request_id" not in outside
    assert (inside["request_id"], inside["method"], inside["trial_id"], inside["message"]) == (
        "rid-1", "Heartbeat", 7, "inside a call"
    )
    assert "study" not in inside
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING pbt\.test: plain", third)
    with pytest.raises(ValueError):
        configure_logging("INFO", "yaml")
