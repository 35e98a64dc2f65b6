"""Load generators: client processes (spawned) that each run simulated workers as threads.

A cell starts its processes, waits until every worker of every process has connected and said it
is ready (however long a loaded machine takes to start them), then hands all of them one common
start time: the measured window is the same for everyone and nobody is measured while starting.

Kinds of worker:

* `cycles`: the PBT worker loop over raw gRPC stubs, GetNewSuggestion, two ReportMeasurement,
  CompleteTrial, sleeping `trial_seconds` in total between them (0: no training at all).
* `echo`: the health service's Check on the same server, the gRPC floor.
* `optuna`: the same loop on Optuna's RDB storage (ask with RandomSampler and two suggest_float,
  two report, tell), each process with its own RDBStorage on the same PostgreSQL.
"""

from __future__ import annotations

import queue
import random
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from typing import Any

import grpc

from benchmarks.load.system import BenchmarkError, Cpu, CpuMeter

READY_TIMEOUT_S = 300.0
"""How long the client processes of a cell may take to start and connect."""


@dataclass
class Samples:
    suggest: list[float] = field(default_factory=list)  # seconds of each measured GetNewSuggestion / ask
    cycle: list[float] = field(default_factory=list)  # seconds of each measured cycle
    echo: list[float] = field(default_factory=list)
    waits: int = 0  # suggestions answered "nothing to do yet" in the window
    client_cpu: float = 0.0  # CPU seconds of the client processes in the window
    errors: list[str] = field(default_factory=list)

    def merge(self, other: Samples) -> None:
        self.suggest += other.suggest
        self.cycle += other.cycle
        self.echo += other.echo
        self.waits += other.waits
        self.client_cpu += other.client_cpu
        self.errors += other.errors


@dataclass(frozen=True)
class Job:
    kind: str  # "cycles", "echo" or "optuna"
    target: str  # the service's address, or Optuna's storage URL
    study: str
    warmup: float
    seconds: float
    trial_seconds: float = 0.0


@dataclass(frozen=True)
class Window:
    begin: float  # wall-clock time.time() at which the workers start
    measure_from: float
    end: float


Loop = Callable[[Window, Samples], None]
"""A worker's loop over the window, once it has connected."""


# --- the workers -----------------------------------------------------------------------------


def _pbt_worker(job: Job, name: str) -> tuple[Loop, Callable[[], None]]:
    from pbt_service.api.v1 import pbt_service_pb2, pbt_service_pb2_grpc, trial_pb2

    channel = grpc.insecure_channel(job.target)
    grpc.channel_ready_future(channel).result(timeout=60)
    stub = pbt_service_pb2_grpc.PbtServiceStub(channel)

    def loop(window: Window, out: Samples) -> None:
        while time.time() < window.end:
            started = time.perf_counter()
            reply = stub.GetNewSuggestion(pbt_service_pb2.GetNewSuggestionRequest(study=job.study, worker_id=name),
                                          timeout=60)  # fmt: skip
            suggested = time.perf_counter()
            measured = time.time() >= window.measure_from
            if not reply.trials:
                if reply.study_done:
                    raise BenchmarkError("the study is done: it cannot be the benchmark's study")
                out.waits += measured
                time.sleep(reply.retry_after_seconds or 0.1)
                continue
            trial_id = reply.trials[0].id
            for step in (1, 2):
                time.sleep(job.trial_seconds / 2)
                measurement = trial_pb2.Measurement(step=step, metrics={"score": random.random()})
                stub.ReportMeasurement(pbt_service_pb2.ReportMeasurementRequest(
                    trial_id=trial_id, worker_id=name, measurement=measurement), timeout=60)  # fmt: skip
            stub.CompleteTrial(pbt_service_pb2.CompleteTrialRequest(trial_id=trial_id, worker_id=name), timeout=60)
            if measured and time.time() <= window.end:
                out.suggest.append(suggested - started)
                out.cycle.append(time.perf_counter() - started)

    return loop, channel.close


def _echo_worker(job: Job, name: str) -> tuple[Loop, Callable[[], None]]:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel = grpc.insecure_channel(job.target)
    grpc.channel_ready_future(channel).result(timeout=60)
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service="")

    def loop(window: Window, out: Samples) -> None:
        while time.time() < window.end:
            started = time.perf_counter()
            stub.Check(request, timeout=60)
            if time.time() >= window.measure_from:
                out.echo.append(time.perf_counter() - started)

    return loop, channel.close


_OPTUNA_STORAGE: dict[str, Any] = {}
_OPTUNA_LOCK = threading.Lock()


def _optuna_worker(job: Job, name: str) -> tuple[Loop, Callable[[], None]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with _OPTUNA_LOCK:  # one storage (engine, pool) per process, like one PBT client process
        storage = _OPTUNA_STORAGE.get(job.target)
        if storage is None:
            storage = _OPTUNA_STORAGE[job.target] = optuna.storages.RDBStorage(job.target)
        study = optuna.load_study(study_name=job.study, storage=storage, sampler=optuna.samplers.RandomSampler())

    def loop(window: Window, out: Samples) -> None:
        while time.time() < window.end:
            started = time.perf_counter()
            trial = study.ask()
            trial.suggest_float("lr", 1e-4, 1.0, log=True)
            trial.suggest_float("h", 0.0, 1.0)
            suggested = time.perf_counter()
            measured = time.time() >= window.measure_from
            for step in (1, 2):
                time.sleep(job.trial_seconds / 2)
                trial.report(random.random(), step)
            study.tell(trial, random.random())
            if measured and time.time() <= window.end:
                out.suggest.append(suggested - started)
                out.cycle.append(time.perf_counter() - started)

    return loop, lambda: None


WORKERS = {"cycles": _pbt_worker, "echo": _echo_worker, "optuna": _optuna_worker}


# --- one client process ----------------------------------------------------------------------


def client_process(
    index: int, job: Job, names: list[str], ready: Any, go: Any, results: Any
) -> None:  # pragma: no cover - runs in a spawned process
    """Connects one thread per worker, reports ready, waits for the common window, runs it and
    sends back its samples (and any error, with its traceback's last line)."""
    out = [Samples() for _ in names]
    connected = threading.Barrier(len(names) + 1)
    started = threading.Event()
    window: list[Window] = []

    def run(i: int, name: str) -> None:
        loop: Loop | None = None
        close: Callable[[], None] = lambda: None  # noqa: E731
        try:
            loop, close = WORKERS[job.kind](job, name)
        except Exception as error:
            out[i].errors.append(f"{name} could not start: {type(error).__name__}: {error}")
        connected.wait()
        started.wait()
        try:
            if loop is not None:
                loop(window[0], out[i])
        except Exception as error:
            last = traceback.format_exc().strip().splitlines()[-1]
            out[i].errors.append(f"{name}: {type(error).__name__}: {str(error)[:300] or last}")
        finally:
            close()

    threads = [threading.Thread(target=run, args=(i, n), daemon=True) for i, n in enumerate(names)]
    for thread in threads:
        thread.start()
    connected.wait()
    ready.put((index, [e for s in out for e in s.errors]))
    begin: float = go.get()
    window.append(Window(begin, begin + job.warmup, begin + job.warmup + job.seconds))
    started.set()
    time.sleep(max(0.0, window[0].measure_from - time.time()))
    cpu = time.process_time()
    time.sleep(max(0.0, window[0].end - time.time()))
    cpu = time.process_time() - cpu
    for thread in threads:
        thread.join()
    total = Samples(client_cpu=cpu)
    for samples in out:
        total.merge(samples)
    results.put(asdict(total))


# --- the parent's side -----------------------------------------------------------------------


def run_cell(job: Job, workers: int, meter: CpuMeter, processes: int = 8) -> tuple[Samples, Cpu]:
    """Runs `workers` simulated workers of `job.kind` (threads in up to `processes` client
    processes) over one common window; returns their samples and the CPU spent in the measured
    part of the window. Raises BenchmarkError when a client fails or cannot start in time."""
    ctx = get_context("spawn")
    count = min(workers, processes)
    names = [f"bench-{job.kind}-{i}" for i in range(workers)]
    ready, results = ctx.Queue(), ctx.Queue()
    gos = [ctx.Queue() for _ in range(count)]
    procs = [
        ctx.Process(target=client_process, args=(i, job, names[i::count], ready, gos[i], results), daemon=True)
        for i in range(count)
    ]
    for proc in procs:
        proc.start()
    try:
        errors = _gather(ready, procs, count, time.monotonic() + READY_TIMEOUT_S, "start and connect")
        if any(errors):
            raise BenchmarkError("client workers could not start: " + "; ".join(e for errs in errors for e in errs[:3]))
        begin = time.time() + 0.05
        for go in gos:
            go.put(begin)
        time.sleep(max(0.0, begin + job.warmup - time.time()))
        meter.begin()
        time.sleep(max(0.0, begin + job.warmup + job.seconds - time.time()))
        cpu = meter.end()
        total = Samples()
        deadline = time.monotonic() + 120 + job.trial_seconds
        for result in _gather(results, procs, count, deadline, "finish"):
            total.merge(Samples(**result))
        for proc in procs:
            proc.join(timeout=30)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=10)
    return total, cpu


def _gather(source: Any, procs: list[Any], count: int, deadline: float, what: str) -> list[Any]:
    """`count` messages from `source` before `deadline`, failing at once if a process dies first."""
    got: list[Any] = []
    while len(got) < count:
        try:
            got.append(source.get(timeout=0.5)[1] if what != "finish" else source.get(timeout=0.5))
            continue
        except queue.Empty:
            pass
        dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
        if dead:
            raise BenchmarkError(f"a client process exited with {dead[0]} before all could {what}")
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{count - len(got)} of {count} client processes did not {what} in time")
    return got
