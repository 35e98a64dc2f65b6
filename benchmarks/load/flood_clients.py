"""One client flooding the service while well-behaved workers run: the pieces of
`benchmarks/flood.py`, also used by `tests/service/test_flood.py`.

* `flood_server`: `pbt-service serve` with tokens required (the admin token in PBT_AUTH_TOKEN),
  default limits, on a database `system.fresh_database` made; `create_token` runs
  `pbt-service token create`.
* `worker_process`: a spawned process running well-behaved PBT workers as threads, each on its
  own connection with its own token metadata (GetNewSuggestion, two ReportMeasurement,
  CompleteTrial, no training). Every RpcError a worker sees is recorded (time, RPC, status); the
  worker then starts a new cycle, nothing is retried.
* `flooder_process`: a spawned process that, phase by phase, sends `flood_bodies()` round-robin
  from many threads over one or more connections, as fast as the server answers, and counts the
  statuses.
* `run_schedule`: the parent's side. Phases of equal length with a gap between them (so calls of
  one phase drain before the next starts) on one common clock; the workers run through every phase
  that has them, and their cycles are binned by completion time. Per phase it reads the CPU of the
  server, of the workers' and the flooder's processes and of the machine (/proc), the server's RSS
  and how much it wrote to its log.

Every loop is bounded by the phase's end; every call has a deadline.
"""

from __future__ import annotations

import os
import queue
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import grpc

from benchmarks.load.system import (
    BenchmarkError,
    CpuMeter,
    Server,
    _service_env,
    pct,
    service_command,
    tree_cpu,
)
from benchmarks.load.system import server as service_process

STUDY = "flood-workers"
ADMIN_TOKEN = "flood-benchmark-admin-token"
SERVICE = "pbt_service.api.v1.PbtService"
RPCS = ("CreateStudy", "GetStudy", "ListStudies", "GetNewSuggestion", "ReportMeasurement", "Heartbeat",
        "CompleteTrial", "StopTrial", "GetEarlyStoppingTrials", "GetTrial", "ListTrials", "PauseStudy",
        "ResumeStudy", "CollectCheckpoints", "ConfirmCheckpointsDeleted")  # fmt: skip
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""The server's default `--max-message-bytes`."""
WORKER_CALL_TIMEOUT = 30.0
FLOOD_CALL_TIMEOUT = 60.0
KINDS = ("oversized", "huge string", "undecodable", "random", "bad fields")
"""The kinds of flood body (`flood_bodies`)."""
REFUSED_STREAM = "UNAVAILABLE/REFUSED_STREAM"
"""UNAVAILABLE because the server reset the stream with HTTP/2 REFUSED_STREAM (error code 7): the
connection had more streams open, as the server counts them, than `--max-streams-per-connection`."""
REFUSALS = ("RESOURCE_EXHAUSTED", "INVALID_ARGUMENT", "NOT_FOUND", "UNAUTHENTICATED", "PERMISSION_DENIED",
            REFUSED_STREAM)  # fmt: skip
"""The statuses a flood request may end with: refused for its size, its content, what it names,
its token or its connection's stream limit. Anything else (OK, INTERNAL, UNKNOWN, another
UNAVAILABLE, DEADLINE_EXCEEDED) is a finding."""
READY_TIMEOUT_S = 120.0


# --- the server ------------------------------------------------------------------------------


@contextmanager
def flood_server(
    url: str, log: Path, admin_token: str = ADMIN_TOKEN, extra: Sequence[str] = (), switch_interval: float | None = None
) -> Iterator[Server]:
    """`pbt-service serve` on loopback with tokens required and otherwise default settings (the
    limits included, unless `extra` flags change them); yields once it accepts connections.
    `switch_interval` (an experiment): the server's `sys.setswitchinterval`, Python's default 0.005 s."""
    program = None
    if switch_interval is not None:
        program = [sys.executable, "-c", f"import sys; sys.setswitchinterval({switch_interval!r}); "
                   "from pbt_service.cli import main; sys.exit(main())"]  # fmt: skip
    with service_process(url, log, program=program, extra=extra, env={"PBT_AUTH_TOKEN": admin_token}) as running:
        yield running


def create_token(url: str, name: str, role: str, study: str | None = None) -> str:
    """A new token from `pbt-service token create` (scoped to `study` when given)."""
    scope = ["--study", study] if study else []
    done = subprocess.run([*service_command(), "token", "create", "--name", name, "--role", role, *scope,
                           "--database-url", url], capture_output=True, text=True, env=_service_env(),
                          timeout=120)  # fmt: skip
    if done.returncode != 0 or not done.stdout.strip():
        raise BenchmarkError(f"pbt-service token create failed ({done.returncode}): {done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def create_study(address: str, admin_token: str, name: str = STUDY, population: int = 20) -> None:
    """The workers' study: no budget (max_generations and max_trials unset), so it never ends."""
    from benchmarks.load.history import study_config
    from pbt_service.api.v1 import pbt_service_pb2, pbt_service_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = pbt_service_pb2_grpc.PbtServiceStub(channel)
        stub.CreateStudy(pbt_service_pb2.CreateStudyRequest(name=name, config=study_config(population)), timeout=60,
                         metadata=bearer(admin_token))  # fmt: skip


def bearer(token: str | None) -> tuple[tuple[str, str], ...] | None:
    return (("authorization", f"Bearer {token}"),) if token else None


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB; NaN once it is gone."""
    values = {"VmRSS:": float("nan"), "VmHWM:": float("nan")}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(maxsplit=1)[0] if line else ""
            if key in values:
                values[key] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return values["VmRSS:"], values["VmHWM:"]


def _channel(address: str) -> grpc.Channel:
    """A channel with a connection of its own (channels otherwise share one per target)."""
    return grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


# --- the flood -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    rpc: str
    kind: str  # "oversized", "undecodable", "random", "bad fields", "huge string"
    data: bytes


def flood_bodies(seed: int = 7) -> list[Body]:
    """The flood: for every RPC, bodies over the size limit (random bytes, and a valid message with
    a string past the limit), undecodable ones, random bytes that do not parse as its request,
    valid messages with bad fields (unknown studies and trials, bad page sizes and counts, names
    and texts over their limits) and one with a string just under the size limit. None of them can
    succeed or change a study the workers use. Big bodies are shared, not copied."""
    from google.protobuf.message import DecodeError

    from pbt_service.api.v1 import pbt_service_pb2 as pb

    rng = random.Random(seed)
    over = MAX_MESSAGE_BYTES + 1024
    oversized_bytes = rng.randbytes(over)
    huge = "x" * (MAX_MESSAGE_BYTES - 4096)
    long_name = "n" * 10_000
    unknown = "flood-no-such-study"
    far = 2**62
    bad: dict[str, list[Any]] = {
        "CreateStudy": [pb.CreateStudyRequest(name=long_name), pb.CreateStudyRequest(name="")],
        "GetStudy": [pb.GetStudyRequest(name=unknown), pb.GetStudyRequest(name=long_name)],
        "ListStudies": [pb.ListStudiesRequest(page_size=-5), pb.ListStudiesRequest(page_token="not-a-token" * 40)],
        "GetNewSuggestion": [pb.GetNewSuggestionRequest(study=unknown, worker_id="flood"),
                             pb.GetNewSuggestionRequest(study=unknown, worker_id="w" * 10_000, count=-3)],
        "ReportMeasurement": [pb.ReportMeasurementRequest(trial_id=far, worker_id="flood"),
                              pb.ReportMeasurementRequest(trial_id=-1, worker_id="flood")],
        "Heartbeat": [pb.HeartbeatRequest(trial_id=far, worker_id="flood"), pb.HeartbeatRequest(trial_id=-1)],
        "CompleteTrial": [pb.CompleteTrialRequest(trial_id=far, worker_id="flood"),
                          pb.CompleteTrialRequest(trial_id=far, failure_reason="r" * 100_000)],
        "StopTrial": [pb.StopTrialRequest(trial_id=far), pb.StopTrialRequest(trial_id=far, reason="r" * 100_000)],
        "GetEarlyStoppingTrials": [pb.GetEarlyStoppingTrialsRequest(study=unknown),
                                   pb.GetEarlyStoppingTrialsRequest(study=long_name)],
        "GetTrial": [pb.GetTrialRequest(trial_id=far), pb.GetTrialRequest(trial_id=-7)],
        "ListTrials": [pb.ListTrialsRequest(study=unknown), pb.ListTrialsRequest(study=unknown, page_size=-1)],
        "PauseStudy": [pb.PauseStudyRequest(name=unknown), pb.PauseStudyRequest(name=long_name)],
        "ResumeStudy": [pb.ResumeStudyRequest(name=unknown), pb.ResumeStudyRequest(name=long_name)],
        "CollectCheckpoints": [pb.CollectCheckpointsRequest(study=unknown),
                               pb.CollectCheckpointsRequest(study=unknown, max_checkpoints=-1)],
        "ConfirmCheckpointsDeleted": [pb.ConfirmCheckpointsDeletedRequest(study=unknown, paths=["/p"] * 10_000),
                                      pb.ConfirmCheckpointsDeletedRequest(study=long_name)],
    }  # fmt: skip
    huge_field = {"CreateStudy": "name", "GetStudy": "name", "ListStudies": "page_token", "PauseStudy": "name",
                  "ResumeStudy": "name", "GetNewSuggestion": "study", "GetEarlyStoppingTrials": "study",
                  "ListTrials": "study", "CollectCheckpoints": "study", "ConfirmCheckpointsDeleted": "study",
                  "ReportMeasurement": "worker_id", "Heartbeat": "worker_id", "CompleteTrial": "failure_reason",
                  "StopTrial": "reason", "GetTrial": None}  # fmt: skip
    undecodable = (b"\x0a\xff", b"\x0a\x05ab", b"\x0f", b"\x08" + b"\x80" * 10 + b"\x01", b"\x12\x02\xff\xfe")
    bodies: list[Body] = []
    for rpc in RPCS:
        request_type = type(bad[rpc][0])
        over_message = request_type(**{huge_field[rpc] or "": "x" * over}) if huge_field[rpc] else None
        bodies.append(Body(rpc, "oversized", oversized_bytes))
        if over_message is not None:
            bodies.append(Body(rpc, "oversized", over_message.SerializeToString()))
        if huge_field[rpc]:
            bodies.append(Body(rpc, "huge string", request_type(**{huge_field[rpc] or "": huge}).SerializeToString()))
        bodies += [Body(rpc, "undecodable", data) for data in undecodable]
        for _ in range(4):
            while True:  # random bytes that do not parse: a body that did would be a real request
                data = rng.randbytes(rng.randint(1, 300))
                try:
                    request_type.FromString(data)
                except DecodeError:
                    break
            bodies.append(Body(rpc, "random", data))
        bodies += [Body(rpc, "bad fields", message.SerializeToString()) for message in bad[rpc]]
    return bodies


@dataclass(frozen=True)
class Variant:
    """How the flooder sends: `connections` connections, `threads` calls in flight in all, with
    `token` ("valid": a worker token of its own, for every study; "none")."""

    token: str
    connections: int
    threads: int = 64
    kinds: tuple[str, ...] = KINDS

    @property
    def label(self) -> str:
        only = "" if self.kinds == KINDS else f", {'+'.join(self.kinds)} only"
        return f"{self.token} token, {self.threads} threads / {self.connections} conn{only}"


@dataclass
class FloodCount:
    sent: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)  # "kind code"
    bad: list[str] = field(default_factory=list)  # a few calls with a status outside REFUSALS


def flooder_process(
    address: str, tokens: dict[str, str | None], schedule: Any, ready: Any, results: Any
) -> None:  # pragma: no cover - runs in a spawned process
    """Runs the list of (variant, begin, end) that `schedule` sends, in order; sends one
    ("flood", sent, codes, by kind, bad calls) per entry."""
    bodies = flood_bodies()
    ready.put(("flooder", len(bodies)))
    for variant, begin, end in schedule.get(timeout=READY_TIMEOUT_S):
        channels = [_channel(address) for _ in range(variant.connections)]
        for channel in channels:
            grpc.channel_ready_future(channel).result(timeout=60)
        mix = [body for body in bodies if body.kind in variant.kinds]
        calls = [
            {rpc: ch.unary_unary(f"/{SERVICE}/{rpc}", _registered_method=False) for rpc in RPCS} for ch in channels
        ]
        metadata = bearer(tokens[variant.token])
        count = FloodCount()
        lock = threading.Lock()

        def flood(index: int) -> None:
            mine = calls[index % len(calls)]  # noqa: B023
            order = random.Random(index).sample(mix, len(mix))  # noqa: B023
            local: Counter[tuple[str, str]] = Counter()
            bad: list[str] = []
            i = 0
            while time.time() < end:  # noqa: B023 - each schedule entry joins its threads before the next
                body = order[i % len(order)]
                i += 1
                try:
                    mine[body.rpc](body.data, timeout=FLOOD_CALL_TIMEOUT, metadata=metadata)  # noqa: B023
                    code = "OK"
                except grpc.RpcError as error:
                    code = error.code().name
                    details = str(error.details())
                    if code == "UNAVAILABLE" and "RST_STREAM with error code 7" in details:
                        code = REFUSED_STREAM
                else:
                    details = ""
                local[(body.kind, code)] += 1
                if code not in REFUSALS and len(bad) < 5:
                    bad.append(f"{body.rpc} {body.kind} ({len(body.data)} bytes): {code} {details[:200]}")
            with lock:  # noqa: B023
                for (kind, code), n in local.items():
                    count.sent += n  # noqa: B023
                    count.codes[code] += n  # noqa: B023
                    count.by_kind[f"{kind} {code}"] += n  # noqa: B023
                count.bad.extend(bad[: max(0, 10 - len(count.bad))])  # noqa: B023

        time.sleep(max(0.0, begin - time.time()))
        threads = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(variant.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=FLOOD_CALL_TIMEOUT + 30)
        for channel in channels:
            channel.close()
        results.put(("flood", count.sent, dict(count.codes), dict(count.by_kind), count.bad))


# --- the workers -----------------------------------------------------------------------------


def worker_process(
    address: str, token: str, study: str, names: list[str], ready: Any, go: Any, results: Any
) -> None:  # pragma: no cover - runs in a spawned process
    """One thread per worker, each on its own connection; cycles until the end `go` sends. Sends
    back (end time, seconds) of every complete cycle, the suggestions answered "wait", and every
    RpcError as (time, worker, RPC, status, details)."""
    from pbt_service.api.v1 import pbt_service_pb2 as pb
    from pbt_service.api.v1 import pbt_service_pb2_grpc, trial_pb2

    metadata = bearer(token)
    cycles: list[tuple[float, float]] = []
    errors: list[tuple[float, str, str, str, str]] = []
    waits: list[float] = []
    lock = threading.Lock()
    connected = threading.Barrier(len(names) + 1)
    window: list[float] = []
    started = threading.Event()

    def run(name: str) -> None:
        channel = _channel(address)
        grpc.channel_ready_future(channel).result(timeout=60)
        stub = pbt_service_pb2_grpc.PbtServiceStub(channel)
        connected.wait()
        started.wait()
        rng = random.Random(name)
        mine: list[tuple[float, float]] = []
        try:
            while time.time() < window[0]:
                rpc = "GetNewSuggestion"
                began = time.perf_counter()
                try:
                    reply = stub.GetNewSuggestion(pb.GetNewSuggestionRequest(study=study, worker_id=name),
                                                  timeout=WORKER_CALL_TIMEOUT, metadata=metadata)  # fmt: skip
                    if not reply.trials:
                        with lock:
                            waits.append(time.time())
                        time.sleep(min(reply.retry_after_seconds or 0.1, 1.0))
                        continue
                    trial_id = reply.trials[0].id
                    rpc = "ReportMeasurement"
                    for step in (1, 2):
                        measurement = trial_pb2.Measurement(step=step, metrics={"score": rng.random()})
                        stub.ReportMeasurement(pb.ReportMeasurementRequest(trial_id=trial_id, worker_id=name,
                                               measurement=measurement), timeout=WORKER_CALL_TIMEOUT,
                                               metadata=metadata)  # fmt: skip
                    rpc = "CompleteTrial"
                    stub.CompleteTrial(pb.CompleteTrialRequest(trial_id=trial_id, worker_id=name),
                                       timeout=WORKER_CALL_TIMEOUT, metadata=metadata)  # fmt: skip
                    mine.append((time.time(), time.perf_counter() - began))
                except grpc.RpcError as error:
                    with lock:
                        errors.append((time.time(), name, rpc, error.code().name,
                                       str(error.details())[:200]))  # fmt: skip
                    time.sleep(0.05)
        finally:
            channel.close()
            with lock:
                cycles.extend(mine)

    threads = [threading.Thread(target=run, args=(name,), daemon=True) for name in names]
    for thread in threads:
        thread.start()
    connected.wait(timeout=READY_TIMEOUT_S)
    ready.put(("workers", len(names)))
    window.append(float(go.get(timeout=READY_TIMEOUT_S)))
    started.set()
    for thread in threads:
        thread.join(timeout=window[0] - time.time() + 2 * WORKER_CALL_TIMEOUT)
    with lock:
        results.put(("workers", list(cycles), list(errors), list(waits)))


# --- the parent's side -----------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    name: str  # "baseline", "flood", "flood alone"
    variant: Variant | None
    workers: bool


@dataclass
class PhaseResult:
    phase: Phase
    seconds: float
    cycles: list[float] = field(default_factory=list)  # seconds of each cycle completed in the window
    waits: int = 0
    worker_errors: list[tuple[float, str, str, str, str]] = field(default_factory=list)
    flood: FloodCount | None = None
    server_cpu: float = 0.0  # CPU seconds
    workers_cpu: float = 0.0
    flooder_cpu: float = 0.0
    busy: float = 0.0  # share of the machine
    rss_mb: float = 0.0  # at the window's end
    hwm_mb: float = 0.0
    log_bytes: int = 0  # written to the server's log in the window

    @property
    def rate(self) -> float:
        return len(self.cycles) / self.seconds

    def latency_ms(self, q: float) -> float:
        return pct(self.cycles, q) * 1000


@dataclass
class Outcome:
    phases: list[PhaseResult]
    worker_errors: list[tuple[float, str, str, str, str]]  # all, in or between windows
    rss_start_mb: float

    @property
    def baseline(self) -> float:
        rates = [p.rate for p in self.phases if p.phase.name == "baseline"]
        return sum(rates) / len(rates) if rates else float("nan")

    def ratio(self, result: PhaseResult) -> float:
        return result.rate / self.baseline if self.baseline else float("nan")

    @property
    def worst_ratio(self) -> float:
        ratios = [self.ratio(p) for p in self.phases if p.phase.workers and p.phase.variant is not None]
        return min(ratios) if ratios else float("nan")


def run_schedule(
    server: Server,
    tokens: dict[str, str | None],
    worker_token: str,
    phases: Sequence[Phase],
    seconds: float,
    workers: int = 8,
    gap: float = 2.0,
    study: str = STUDY,
    database_pid: int | None = None,
) -> Outcome:
    """Runs `phases` (those with workers first, then those without), each `seconds` long after a
    `gap`; raises BenchmarkError when a client process fails or cannot start in time."""
    with_workers = [i for i, p in enumerate(phases) if p.workers]
    if with_workers != list(range(len(with_workers))):
        raise ValueError("the phases with workers must come first")
    ctx = get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Queue()
    names = [f"flood-bench-worker-{i}" for i in range(workers)]
    procs: dict[str, Any] = {}
    if with_workers:
        procs["workers"] = ctx.Process(target=worker_process, args=(server.address, worker_token, study, names, ready,
                                                                     go, results), daemon=True)  # fmt: skip
    flood_phases = [p for p in phases if p.variant is not None]
    schedule_queue = ctx.Queue()
    if flood_phases:
        procs["flooder"] = ctx.Process(target=flooder_process, args=(server.address, tokens, schedule_queue, ready,
                                                                     results), daemon=True)  # fmt: skip
    for proc in procs.values():
        proc.start()
    try:
        _wait(ready, procs, len(procs), "start and connect")
        t0 = time.time() + 0.5
        windows = [(t0 + i * (seconds + gap) + gap, t0 + (i + 1) * (seconds + gap)) for i in range(len(phases))]
        if flood_phases:
            schedule_queue.put([(p.variant, *windows[i]) for i, p in enumerate(phases) if p.variant is not None])
        if with_workers:
            go.put(windows[with_workers[-1]][1])
        pids = {name: proc.pid for name, proc in procs.items()}
        meter = CpuMeter(server.pid, database_pid)
        rss_start = rss_mb(server.pid)[0]
        out: list[PhaseResult] = []
        for phase, (begin, end) in zip(phases, windows, strict=True):
            time.sleep(max(0.0, begin - time.time()))
            server.check_alive()
            log_start = _size(server.log)
            clients = {name: tree_cpu(pid) for name, pid in pids.items()}
            meter.begin()
            time.sleep(max(0.0, end - time.time()))
            cpu = meter.end()
            after = {name: tree_cpu(pid) for name, pid in pids.items()}
            rss, hwm = rss_mb(server.pid)
            out.append(PhaseResult(phase, seconds, server_cpu=cpu.server, busy=cpu.busy, rss_mb=rss, hwm_mb=hwm,
                                   workers_cpu=after.get("workers", 0.0) - clients.get("workers", 0.0),
                                   flooder_cpu=after.get("flooder", 0.0) - clients.get("flooder", 0.0),
                                   log_bytes=_size(server.log) - log_start))  # fmt: skip
        floods = iter(r for r in out if r.phase.variant is not None)
        errors: list[tuple[float, str, str, str, str]] = []
        expected = len(flood_phases) + bool(with_workers)
        for message in _wait(results, procs, expected, "finish", deadline_s=FLOOD_CALL_TIMEOUT + 120):
            if message[0] == "flood":
                next(floods).flood = FloodCount(message[1], Counter(message[2]), Counter(message[3]), message[4])
            else:
                cycles, errors, waits = message[1], message[2], message[3]
                for result, (begin, end) in zip(out, windows, strict=False):
                    result.cycles = [s for t, s in cycles if begin <= t <= end and t - s >= begin]
                    result.waits = sum(begin <= t <= end for t in waits)
                    result.worker_errors = [e for e in errors if begin <= e[0] <= end]
        for proc in procs.values():
            proc.join(timeout=30)
        return Outcome(out, errors, rss_start)
    finally:
        for proc in procs.values():
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=10)


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _wait(source: Any, procs: dict[str, Any], count: int, what: str, deadline_s: float = READY_TIMEOUT_S) -> list[Any]:
    """`count` messages from `source`, failing at once if a process dies first."""
    deadline = time.monotonic() + deadline_s
    got: list[Any] = []
    while len(got) < count:
        try:
            message = source.get(timeout=0.5)
        except queue.Empty:
            dead = [f"{name} exited with {p.exitcode}" for name, p in procs.items() if p.exitcode not in (None, 0)]
            if dead:
                raise BenchmarkError(f"a client process failed before all could {what}: {dead[0]}") from None
            if time.monotonic() > deadline:
                raise BenchmarkError(f"the client processes did not {what} in time") from None
            continue
        got.append(message)
    return got
