"""Bounded, reproducible fuzzing of every RPC of `pbt_service.api.v1.PbtService`.

A `pbt-service serve` process per backend (a SQLite file, PostgreSQL) gets, with a fixed seed:
undecodable bodies, random bytes, random well-formed messages built by walking each request's
descriptor (integer extremes, nan/inf/±1.7e308, NUL and very long unicode strings, random repeated
lengths, unknown enum numbers), and valid requests with a few fields mutated that way. Every call
must end with a status other than INTERNAL, UNKNOWN or DEADLINE_EXCEEDED; the process must still run,
its memory stay bounded (an undecodable body used to keep ~19 KiB each, see docs/security.md), and a
normal round trip (create study, suggest, report, complete) must work afterwards. A token-protected
server is fuzzed briefly too: nothing but health answers without the token.

Each failing call is listed (RPC, status, details, the server's exception, a request summary),
grouped by RPC and cause.
"""

from __future__ import annotations

import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from pbt_service import converters
from pbt_service.api.v1 import pbt_service_pb2, study_pb2, trial_pb2
from pbt_service.core.types import Measurement
from tests.service.conftest import simple_config
from worker_client import PbtClient

ROOT = Path(__file__).resolve().parents[2]
SEED = 20_240_917
SERVICE = pbt_service_pb2.DESCRIPTOR.services_by_name["PbtService"]
RANDOM_MESSAGES = 30
"""Per RPC and backend; twice as many again mutated from a valid request."""
RANDOM_BODIES = 300
UNDECODABLE = 1500
UNDECODABLE_GROWTH_MB = 8.0
"""RSS growth allowed over UNDECODABLE bodies: grpcio alone would keep ~28 MiB."""
FUZZ_GROWTH_MB = 64.0
CALL_TIMEOUT = 10.0
BAD_CODES = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED)
STUDY = "fuzzed"
WORKER = "fuzz-worker"
TOKEN = "fuzz-token"
UNDECODABLE_BODIES = (b"\x0a\xff", b"\x0a\x05ab", b"\x0f", b"\x08" + b"\x80" * 10 + b"\x01", b"\x12\x02\xff\xfe")

INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
SPECIAL_FLOATS = (math.nan, math.inf, -math.inf, 1.7e308, -1.7e308, 5e-324, -0.0, 0.0, 1.0, -1.0, 1e-300, 1e300)
SPECIAL_STRINGS = ("", " ", "\x00", "a\x00b", "../../etc/passwd", "/", "x" * 256, "é" * 257, "💥" * 300,
                   "'; DROP TABLE studies; --", "%s%n", "\u202e", "\ufeff", "null", "-1", "9" * 40)
NUMBERS: tuple[Callable[[random.Random], str], ...] = (
    lambda rng: str(rng.randint(-(2**70), 2**70)),
    lambda rng: str(rng.choice((2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**40, -1, 0))),
    lambda rng: rng.choice(("1e309", "nan", "inf", "-0", "0x10", " 7", "7 ", "1_000", "٣")),
)
"""Strings that look like numbers (page tokens, ids): overflowing, negative, odd spellings."""
MAX_DEPTH = 4


def method_class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


def message_type(fd: Any) -> Descriptor:
    """The message type of a message field."""
    assert fd.message_type is not None, fd.full_name
    descriptor: Descriptor = fd.message_type
    return descriptor


def is_map(fd: Any) -> bool:
    return fd.type == FieldDescriptor.TYPE_MESSAGE and bool(message_type(fd).GetOptions().map_entry)


@dataclass
class Known:
    """Values the server holds, so that random requests also reach past the lookups."""

    studies: list[str] = field(default_factory=lambda: [STUDY])
    trial_ids: list[int] = field(default_factory=list)
    workers: list[str] = field(default_factory=lambda: [WORKER])


class MessageFuzzer:
    """Random messages of any type, by walking its descriptor; every choice comes from `rng`."""

    def __init__(self, rng: random.Random, known: Known) -> None:
        self.rng = rng
        self.known = known

    def integer(self, kind: int) -> int:
        low, high = INT_RANGES[kind]
        return self.rng.choice((low, high, 0, 1, max(low, -1), high // 2 + 1, self.rng.randint(low, high),
                                self.rng.randint(max(low, -1000), 1000)))  # fmt: skip

    def real(self) -> float:
        if self.rng.random() < 0.6:
            return self.rng.choice(SPECIAL_FLOATS)
        return self.rng.uniform(-1, 1) * 10.0 ** self.rng.randint(-30, 30)

    def text(self) -> str:
        roll = self.rng.random()
        if roll < 0.35:
            return self.rng.choice(SPECIAL_STRINGS)
        if roll < 0.45:
            return "".join(self.rng.choice("ab\x00") for _ in range(self.rng.choice((1000, 20_000, 100_000))))
        if roll < 0.6:
            return self.rng.choice(NUMBERS)(self.rng)
        length = self.rng.choice((1, 3, 10, 64, 255, 256, 257, 1000))
        return "".join(self.code_point() for _ in range(length))

    def code_point(self) -> str:
        plane = self.rng.choice((0x7F, 0x7FF, 0xFFFF, 0x10FFFF))
        point = self.rng.randint(0, plane)
        return chr(point) if not 0xD800 <= point <= 0xDFFF else "?"

    def scalar(self, fd: Any, name: str) -> Any:
        steer = self.rng.random() < 0.4
        if fd.type in INT_RANGES:
            if steer and name.endswith("trial_id") and self.known.trial_ids:
                return self.rng.choice(self.known.trial_ids)
            return self.integer(fd.type)
        if fd.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return self.real()
        if fd.type == FieldDescriptor.TYPE_BOOL:
            return self.rng.random() < 0.5
        if fd.type == FieldDescriptor.TYPE_STRING:
            if steer and name in ("name", "study"):
                return self.rng.choice(self.known.studies)
            if steer and name == "worker_id":
                return self.rng.choice(self.known.workers)
            return self.text()
        if fd.type == FieldDescriptor.TYPE_BYTES:
            return self.rng.randbytes(self.rng.choice((0, 1, 16, 1000)))
        if fd.type == FieldDescriptor.TYPE_ENUM:
            assert fd.enum_type is not None
            numbers = [v.number for v in fd.enum_type.values]
            return self.rng.choice([*numbers, -1, 99, 2**31 - 1, -(2**31)])
        raise AssertionError(f"unexpected field type {fd.type} of {fd.full_name}")

    def fill(self, message: Message, depth: int = 0, chance: float = 0.7) -> Message:
        for fd in message.DESCRIPTOR.fields:
            if self.rng.random() < chance / (1 + depth):
                self.set_field(message, fd, depth)
        return message

    def set_field(self, message: Message, fd: Any, depth: int) -> None:
        """Sets (or, for a repeated field, appends to) one field with a random value."""
        is_message = fd.type == FieldDescriptor.TYPE_MESSAGE
        if is_map(fd):
            entries = getattr(message, fd.name)
            key_fd, value_fd = message_type(fd).fields_by_name["key"], message_type(fd).fields_by_name["value"]
            for _ in range(self.length()):
                key = self.scalar(key_fd, "key")
                if value_fd.type == FieldDescriptor.TYPE_MESSAGE:
                    self.fill(entries[key], depth + 1)
                else:
                    entries[key] = self.scalar(value_fd, "value")
            return
        if fd.is_repeated:
            values = getattr(message, fd.name)
            for _ in range(self.length()):
                if is_message:
                    if depth < MAX_DEPTH:
                        self.fill(values.add(), depth + 1)
                else:
                    values.append(self.scalar(fd, fd.name))
            return
        if is_message:
            if depth < MAX_DEPTH:
                getattr(message, fd.name).SetInParent()
                self.fill(getattr(message, fd.name), depth + 1)
            return
        setattr(message, fd.name, self.scalar(fd, fd.name))

    def length(self) -> int:
        return self.rng.choice((0, 1, 1, 2, 3, 5, 17, 100))

    def mutate(self, message: Message) -> Message:
        """One to three fields anywhere in `message` set to random values, appended to or cleared."""
        spots = list(self.spots(message, 0))
        for holder, fd, depth in self.rng.sample(spots, min(len(spots), self.rng.choice((1, 1, 2, 3)))):
            if self.rng.random() < 0.15 or (fd.is_repeated and self.rng.random() < 0.5):
                holder.ClearField(fd.name)
            self.set_field(holder, fd, depth)
        return message

    def spots(self, message: Message, depth: int) -> Iterator[tuple[Message, Any, int]]:
        """Every field of `message` and of the messages inside it, with its depth."""
        for fd in message.DESCRIPTOR.fields:
            yield message, fd, depth
            if fd.type != FieldDescriptor.TYPE_MESSAGE or is_map(fd):
                continue
            if fd.is_repeated:
                for item in getattr(message, fd.name):
                    yield from self.spots(item, depth + 1)
            elif message.HasField(fd.name):
                yield from self.spots(getattr(message, fd.name), depth + 1)


def valid_request(method: MethodDescriptor, known: Known, rng: random.Random) -> Message:
    """A request that the service should accept (or refuse for its state, not its form)."""
    request = method_class(method.input_type)()
    trial_id = rng.choice(known.trial_ids) if known.trial_ids else 1
    for fd in request.DESCRIPTOR.fields:
        if fd.name in ("name", "study") and not fd.is_repeated:
            setattr(request, fd.name, STUDY if method.name != "CreateStudy" else f"valid-{rng.randrange(10**9)}")
        elif fd.name == "worker_id":
            setattr(request, fd.name, WORKER)
        elif fd.name == "trial_id":
            setattr(request, fd.name, trial_id)
        elif fd.message_type is not None and fd.message_type.full_name == study_pb2.StudyConfig.DESCRIPTOR.full_name:
            getattr(request, fd.name).CopyFrom(converters.study_config_to_proto(simple_config()))
        elif fd.message_type is not None and fd.message_type.full_name == trial_pb2.Measurement.DESCRIPTOR.full_name:
            measurement = Measurement(step=rng.randint(1, 100), metrics={"score": rng.random()})
            getattr(request, fd.name).CopyFrom(converters.measurement_to_proto(measurement))
    return request


def summary(value: Any, budget: int = 400) -> str:
    """A short readable rendering of a request: long strings cut, repeated fields counted."""

    def render(item: Any) -> str:
        if isinstance(item, Message):
            return "{" + ", ".join(f"{fd.name}={render(v)}" for fd, v in item.ListFields()) + "}"
        if isinstance(item, str):
            return repr(item) if len(item) <= 40 else f"{item[:20]!r}…(len {len(item)})"
        if isinstance(item, bytes):
            return f"bytes[{len(item)}]={item[:24].hex()}"
        if hasattr(item, "items"):
            return "{" + ", ".join(f"{render(k)}: {render(v)}" for k, v in list(item.items())[:3]) + (
                f", …({len(item)})" if len(item) > 3 else "") + "}"
        if hasattr(item, "__len__") and not isinstance(item, str):
            items = list(item)
            more = f", …({len(items)})" if len(items) > 3 else ""
            return "[" + ", ".join(render(v) for v in items[:3]) + more + "]"
        return repr(item)

    text = render(value)
    return text if len(text) <= budget else text[:budget] + "…"


@dataclass(frozen=True)
class Finding:
    rpc: str
    code: str
    details: str
    request: str


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def rss_mb(self) -> float | None:
        status = Path(f"/proc/{self.process.pid}/status")
        if not status.exists():
            return None
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return None

    def cause(self, details: str) -> str:
        """The exception the server logged for an `internal error <id>`, else ""."""
        found = re.search(r"internal error ([0-9a-f]+)", details)
        if not found:
            return ""
        records = re.split(r"\n(?=\d{4}-\d\d-\d\d )", self.log_path.read_text(errors="replace"))
        for record in records:
            if f"internal error {found.group(1)}" in record:
                return record.strip().splitlines()[-1][:300]
        return ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(database_url: str, folder: Path, token: str | None = None) -> Iterator[Server]:
    """`pbt-service serve` on loopback, until the block ends; fails with the log if it does not start."""
    port = _free_port()
    log_path = folder / f"service-{port}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PBT_AUTH_TOKEN", None)
    if token:
        env["PBT_AUTH_TOKEN"] = token
    command = [sys.executable, "-m", "pbt_service.cli", "serve", "--database-url", database_url,
               "--port", str(port), "--grace-seconds", "1"]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = Server(process, port, log_path)
    try:
        deadline = time.monotonic() + 60
        with grpc.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                assert process.poll() is None, log_path.read_text(errors="replace")
                try:
                    if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                        break
                except grpc.RpcError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text(errors="replace")
                time.sleep(0.05)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Caller:
    """Raw calls to every RPC by name: bodies go out as given, replies come back as bytes."""

    def __init__(self, channel: grpc.Channel, server: Server, token: str | None = None) -> None:
        self.server = server
        self.metadata = (("authorization", f"Bearer {token}"),) if token else None
        self.calls = {m.name: channel.unary_unary(f"/{SERVICE.full_name}/{m.name}", _registered_method=False)
                      for m in SERVICE.methods}  # fmt: skip
        self.codes: dict[str, int] = {}
        self.findings: list[Finding] = []

    def call(self, rpc: str, body: bytes, shown: Callable[[], str]) -> grpc.StatusCode:
        try:
            self.calls[rpc](body, timeout=CALL_TIMEOUT, metadata=self.metadata)
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
            if code in BAD_CODES:
                details = error.details() or ""
                cause = self.server.cause(details)
                self.findings.append(Finding(rpc, code.name, f"{details} <- {cause}" if cause else details, shown()))
        self.codes[code.name] = self.codes.get(code.name, 0) + 1
        return code

    def send(self, rpc: str, request: Message) -> grpc.StatusCode:
        return self.call(rpc, request.SerializeToString(), lambda: summary(request))


def report(findings: list[Finding]) -> str:
    """Findings grouped by RPC, status and cause (numbers aside), each with a count and its first
    call's details and request."""
    groups: dict[tuple[str, str, str], list[Finding]] = {}
    for finding in findings:
        cause = re.sub(r"internal error [0-9a-f]+", "internal error <id>", finding.details)
        groups.setdefault((finding.rpc, finding.code, re.sub(r"-?\d+", "N", cause)), []).append(finding)
    lines = [f"{len(findings)} calls ended INTERNAL/UNKNOWN/DEADLINE_EXCEEDED, {len(groups)} distinct:"]
    for (rpc, code, _), members in sorted(groups.items()):
        first = members[0]
        lines.append(f"- {rpc} {code} x{len(members)}: {first.details}\n    request: {first.request}")
    return "\n".join(lines)


def round_trip(address: str, name: str, token: str | None = None) -> None:
    with PbtClient(address, timeout_seconds=CALL_TIMEOUT, retry_seconds=0, token=token) as client:
        client.create_study(name, simple_config(population=2))
        trial = client.get_new_suggestion(name, "round-trip").trials[0]
        client.report_measurement(trial.id, "round-trip", Measurement(step=1, metrics={"score": 0.5}))
        client.complete_trial(trial.id, "round-trip")
        assert client.get_trial(trial.id).status.name == "COMPLETED"


def prepare(address: str, token: str | None = None) -> Known:
    """Study STUDY with active trials held by WORKER."""
    known = Known()
    with PbtClient(address, timeout_seconds=CALL_TIMEOUT, retry_seconds=0, token=token) as client:
        client.create_study(STUDY, simple_config(population=8))
        known.trial_ids = [t.id for t in client.get_new_suggestion(STUDY, WORKER, count=4).trials]
    return known


def undecodable(caller: Caller, count: int) -> None:
    for i in range(count):
        method = SERVICE.methods[i % len(SERVICE.methods)]
        body = UNDECODABLE_BODIES[i % len(UNDECODABLE_BODIES)]
        code = caller.call(method.name, body, lambda b=body: summary(b))  # type: ignore[misc]
        assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED), (method.name, body, code)


def fuzz(caller: Caller, rng: random.Random, known: Known, messages: int, bodies: int) -> None:
    fuzzer = MessageFuzzer(rng, known)
    for _ in range(bodies):
        method = rng.choice(SERVICE.methods)
        body = rng.randbytes(rng.choice((1, 2, 3, 8, 64, 500)))
        caller.call(method.name, body, lambda b=body: summary(b))  # type: ignore[misc]
    for method in SERVICE.methods:
        request_class = method_class(method.input_type)
        for i in range(3 * messages):
            if i % 3:
                request = fuzzer.mutate(valid_request(method, known, rng))
            else:
                request = fuzzer.fill(request_class())
            caller.send(method.name, request)


@pytest.mark.parametrize(
    "storage_url", ["sqlite-file", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_fuzzed_requests_never_break_the_server(storage_url: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    with serving(storage_url, tmp_path) as server, grpc.insecure_channel(server.address) as channel:
        known = prepare(server.address)
        caller = Caller(channel, server)
        undecodable(caller, 300)  # warm-up: every handler built, every code path touched once
        fuzz(caller, rng, known, messages=2, bodies=20)
        before = server.rss_mb()
        undecodable(caller, UNDECODABLE)
        after_undecodable = server.rss_mb()
        fuzz(caller, rng, known, messages=RANDOM_MESSAGES, bodies=RANDOM_BODIES)
        after_fuzz = server.rss_mb()
        assert server.process.poll() is None, server.log_path.read_text(errors="replace")[-3000:]
        round_trip(server.address, "after-fuzz")
        print(f"statuses: {dict(sorted(caller.codes.items()))}; RSS MiB {before} -> {after_undecodable} "
              f"(after {UNDECODABLE} undecodable) -> {after_fuzz} (after the fuzz)")  # fmt: skip
        log = server.log_path.read_text(errors="replace")
    assert not caller.findings, report(caller.findings)
    assert "Exception deserializing" not in log
    if before is not None and after_undecodable is not None and after_fuzz is not None:
        assert after_undecodable - before < UNDECODABLE_GROWTH_MB, (before, after_undecodable)
        assert after_fuzz - before < FUZZ_GROWTH_MB, (before, after_fuzz)


def test_fuzzed_requests_to_a_token_protected_server(tmp_path: Path) -> None:
    """Without the token or with a wrong one every call, decodable or not, is UNAUTHENTICATED and
    reflection is refused; health answers; with the token the server behaves as without auth."""
    rng = random.Random(SEED + 1)
    with serving(f"sqlite:///{tmp_path / 'pbt.db'}", tmp_path, token=TOKEN) as server:
        with grpc.insecure_channel(server.address) as channel:
            known = prepare(server.address, token=TOKEN)
            fuzzer = MessageFuzzer(rng, known)
            for token in (None, "wrong", TOKEN + " ", TOKEN.upper()):
                caller = Caller(channel, server, token)
                for method in SERVICE.methods:
                    for _ in range(3):
                        caller.send(method.name, fuzzer.fill(method_class(method.input_type)()))
                        caller.send(method.name, valid_request(method, known, rng))
                        caller.call(method.name, rng.randbytes(rng.randint(1, 64)), lambda: "random bytes")
                undecodable(caller, 2 * len(SERVICE.methods))
                assert caller.codes == {"UNAUTHENTICATED": 11 * len(SERVICE.methods)}, (token, caller.codes)
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            ask = reflection_pb2.ServerReflectionRequest(list_services="")
            with pytest.raises(grpc.RpcError) as refused:
                list(reflection.ServerReflectionInfo(iter([ask]), timeout=5))
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            answers = list(reflection.ServerReflectionInfo(iter([ask]), timeout=5,
                                                           metadata=(("authorization", f"Bearer {TOKEN}"),)))
            assert SERVICE.full_name in [s.name for s in answers[0].list_services_response.service]
            authorized = Caller(channel, server, TOKEN)
            fuzz(authorized, rng, known, messages=5, bodies=50)
            undecodable(authorized, 2 * len(SERVICE.methods))
        assert server.process.poll() is None
        round_trip(server.address, "after-auth-fuzz", token=TOKEN)
    assert not authorized.findings, report(authorized.findings)
