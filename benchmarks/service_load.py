"""Service load: latency and throughput of simulated workers against a real server, with floors.

One `pbt-service serve` process per database (PostgreSQL, SQLite) on studies that already hold
1k, 10k and 100k trials (bulk-inserted, not sent through the API), driven by 1, 8, 32 and 64
simulated workers spread over client processes. A worker runs full cycles with no training in
between: GetNewSuggestion, two ReportMeasurement, CompleteTrial. The same run measures the floors:
a bare gRPC round trip to the same server (the health service's Check, served by the same thread
pool) and one committed single-row UPDATE on the same database through the service's engine
settings. Then the paper's figure 12(b): generations per hour against workers, trials of 1 s.
Each cell also shows the CPU the server process and the database spent per cycle, and
`--profile` samples the server with py-spy (`pip install py-spy`) to say where its CPU goes.

    PYTHONPATH=.:protos python benchmarks/service_load.py            # full run, ~9 min
    PYTHONPATH=.:protos python benchmarks/service_load.py --quick    # < 5 min, noisier

PostgreSQL is a throwaway server with its default (durable) settings, started from
/usr/lib/postgresql/*/bin, unless `--postgres-url` names one where the user may CREATE DATABASE.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import event, insert, text, update
from sqlalchemy.engine import make_url

from pbt_service.api.v1 import pbt_service_pb2, pbt_service_pb2_grpc, trial_pb2
from pbt_service.core.types import AlgorithmConfig, Objective, ParameterSpec, ParameterType, Scale, StudyConfig
from pbt_service.service import PbtServicer
from pbt_service.store.engine import make_engine
from pbt_service.store.schema import upgrade
from pbt_service.store.sql_rows import MEASUREMENTS, METRICS, PARAMS, STUDIES, TRIALS
from pbt_service.store.sql_storage import SqlStorage

ROOT = Path(__file__).resolve().parents[1]
STUDY = "load"
RPCS_PER_CYCLE = 4
HP = ("lr", "h")
CHUNK = 5000
TICKS = os.sysconf("SC_CLK_TCK")


def study_config(population: int) -> StudyConfig:
    return StudyConfig(
        parameters=(
            ParameterSpec("lr", ParameterType.FLOAT, low=1e-4, high=1.0, scale=Scale.LOG),
            ParameterSpec("h", ParameterType.FLOAT, low=0.0, high=1.0),
        ),
        objectives=(Objective("score"),),
        algorithm=AlgorithmConfig(population_size=population, seed=1),
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- databases -------------------------------------------------------------------------------


@dataclass
class Postgres:
    admin_url: str
    pid_file: Path | None = None  # a throwaway server's postmaster.pid, for CPU accounting

    def pids(self) -> list[int]:
        if self.pid_file is None or not self.pid_file.exists():
            return []
        postmaster = int(self.pid_file.read_text().split()[0])
        return [postmaster, *(p for p in _all_pids() if _stat(p)[1] == postmaster)]


@contextmanager
def throwaway_postgres() -> Iterator[Postgres]:
    """A PostgreSQL server with default settings in a temp dir."""
    bin_dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    pg_ctl = shutil.which("pg_ctl") or (str(bin_dirs[0] / "pg_ctl") if bin_dirs else None)
    if pg_ctl is None:
        raise SystemExit("pg_ctl not found: install PostgreSQL or pass --postgres-url")
    home = Path(tempfile.mkdtemp(prefix="pbt-bench-pg-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(home, "postgres", "postgres")
    port = _free_port()
    data = home / "data"

    def pg_ctl_run(*args: str) -> None:
        subprocess.run([*as_postgres, pg_ctl, "-D", str(data), *args], check=True, capture_output=True, timeout=120)

    pg_ctl_run("initdb", "-o", "-A trust -U postgres")
    pg_ctl_run("start", "-w", "-l", str(home / "log"), "-o", f"-p {port} -k {home} -h 127.0.0.1 -c max_connections=300")
    try:
        yield Postgres(f"postgresql://postgres@127.0.0.1:{port}/postgres", data / "postmaster.pid")
    finally:
        pg_ctl_run("stop", "-m", "fast", "-w")
        shutil.rmtree(home, ignore_errors=True)


def fresh_database(backend: str, postgres: Postgres | None, name: str, workdir: Path) -> str:
    """An empty database on `backend`, its schema at head."""
    if backend == "sqlite":
        url = f"sqlite:///{workdir / (name + '.db')}"
    else:
        assert postgres is not None
        admin = make_engine(postgres.admin_url)
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = make_url(postgres.admin_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    return url


def load_history(url: str, trials: int, population: int) -> None:
    """Creates the study and bulk-inserts `trials` completed trials: full generations, every trial
    but the last generation's having initiated its lineage's next one, one measurement each."""
    storage = SqlStorage.from_url(url)
    now = datetime.now(timezone.utc) - timedelta(days=1)
    storage.run(lambda tx: tx.create_study(STUDY, study_config(population), now))
    storage.close()
    engine = make_engine(url)
    rng = random.Random(0)
    with engine.begin() as connection:
        study_id = connection.scalar(text("SELECT id FROM studies WHERE name = :n"), {"n": STUDY})
        for start in range(0, trials, CHUNK):
            ids = range(start + 1, min(trials, start + CHUNK) + 1)
            connection.execute(insert(TRIALS), [_trial_row(i, study_id, population, now) for i in ids])
            params = [{"trial_id": i, "name": n, "kind": "float", "float_value": rng.random()} for i in ids for n in HP]
            connection.execute(insert(PARAMS), params)
            connection.execute(insert(MEASUREMENTS), [
                {"id": i, "trial_id": i, "step": 10 * (1 + (i - 1) // population), "checkpoint_path": f"/c/{i}",
                 "elapsed_seconds": 1.0, "create_time": now} for i in ids
            ])  # fmt: skip
            metrics = [{"measurement_id": i, "name": "score", "value": rng.random()} for i in ids]
            connection.execute(insert(METRICS), metrics)
        connection.execute(
            update(TRIALS)
            .where(TRIALS.c.study_id == study_id, TRIALS.c.generation < trials // population - 1)
            .values(initiated_trial_id=TRIALS.c.id + population)
        )
        connection.execute(update(STUDIES).where(STUDIES.c.id == study_id).values(trial_count=trials))
        if engine.dialect.name == "postgresql":
            for table in ("trials", "measurements"):
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {trials})"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    engine.dispose()


def _trial_row(i: int, study_id: int, population: int, now: datetime) -> dict[str, Any]:
    generation = (i - 1) // population
    before = i - population if generation > 0 else None
    return {
        "id": i, "study_id": study_id, "number": i, "generation": generation, "status": "completed",
        "worker_id": f"history-{i % population}", "warm_start_checkpoint_path": f"/c/{before}" if before else "",
        "parent_trial_id": before, "initiator_parent_trial_id": before, "initiated_trial_id": None,
        "stop_requested": False, "status_message": "", "final_measurement_id": i, "create_time": now,
        "heartbeat_time": now, "end_time": now,
    }  # fmt: skip


def commit_floor(url: str, samples: int) -> float:
    """Median seconds of one committed single-row UPDATE, through the service's engine settings."""
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS bench_floor (id INTEGER PRIMARY KEY, n INTEGER)"))
        connection.execute(text("DELETE FROM bench_floor"))
        connection.execute(text("INSERT INTO bench_floor VALUES (1, 0)"))
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(text("UPDATE bench_floor SET n = n + 1 WHERE id = 1"))
        times.append(time.perf_counter() - started)
    engine.dispose()
    return pct(times, 0.5)


# --- CPU accounting --------------------------------------------------------------------------


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _stat(pid: int) -> tuple[float, int]:
    """(CPU seconds, parent pid) of a process; (0, 0) once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0
    return (int(fields[11]) + int(fields[12])) / TICKS, int(fields[1])


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


@dataclass
class CpuMeter:
    """CPU seconds of the server, the database and the machine over a measured window."""

    server_pid: int
    postgres: Postgres | None
    start: tuple[float, dict[int, float], float, float] = (0.0, {}, 0.0, 0.0)

    def read(self) -> tuple[float, dict[int, float], float, float]:
        busy, total = _machine_busy()
        database = {p: _stat(p)[0] for p in (self.postgres.pids() if self.postgres else [])}
        return _stat(self.server_pid)[0], database, busy, total

    def begin(self) -> None:
        self.start = self.read()

    def end(self) -> tuple[float, float, float]:
        """(server seconds, database seconds, machine busy share) since `begin`; a database
        process that started meanwhile counts whole."""
        server, database, busy, total = self.read()
        before = self.start[1]
        spent = sum(cpu - before.get(pid, 0.0) for pid, cpu in database.items())
        return server - self.start[0], spent, (busy - self.start[2]) / ((total - self.start[3]) or math.nan)


# --- the server ------------------------------------------------------------------------------


@contextmanager
def server(url: str, log: Path, max_workers: int) -> Iterator[tuple[str, int]]:
    """`pbt-service serve` as a subprocess; yields its address and pid once it serves."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "pbt_service.cli", "serve", "--database-url", url, "--host", "127.0.0.1",
               "--port", str(port), "--max-workers", str(max_workers), "--log-level", "WARNING",
               "--grace-seconds", "1"]  # fmt: skip
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    address = f"127.0.0.1:{port}"
    try:
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
        yield address, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- simulated workers (in client processes) -------------------------------------------------


@dataclass
class Samples:
    suggest: list[float] = field(default_factory=list)
    cycle: list[float] = field(default_factory=list)
    echo: list[float] = field(default_factory=list)
    waits: int = 0

    def merge(self, other: dict[str, Any]) -> None:
        self.suggest += other["suggest"]
        self.cycle += other["cycle"]
        self.echo += other["echo"]
        self.waits += other["waits"]


Window = tuple[float, float, float]
"""Wall-clock (start, measure from, end)."""


def _cycles(address: str, worker: str, window: Window, trial_seconds: float) -> Samples:
    """One worker running full cycles until the window ends; its trial in flight is completed."""
    begin, measure_from, end = window
    out = Samples()
    with grpc.insecure_channel(address) as channel:
        stub = pbt_service_pb2_grpc.PbtServiceStub(channel)
        time.sleep(max(0.0, begin - time.time()))
        while time.time() < end:
            started = time.perf_counter()
            request = pbt_service_pb2.GetNewSuggestionRequest(study=STUDY, worker_id=worker)
            reply = stub.GetNewSuggestion(request, timeout=60)
            suggested = time.perf_counter()
            measured = time.time() >= measure_from
            if not reply.trials:
                out.waits += measured
                time.sleep(reply.retry_after_seconds or 0.1)
                continue
            trial_id = reply.trials[0].id
            for step in (1, 2):
                time.sleep(trial_seconds / 2)
                measurement = trial_pb2.Measurement(step=step, metrics={"score": random.random()})
                stub.ReportMeasurement(pbt_service_pb2.ReportMeasurementRequest(
                    trial_id=trial_id, worker_id=worker, measurement=measurement), timeout=60)  # fmt: skip
            stub.CompleteTrial(pbt_service_pb2.CompleteTrialRequest(trial_id=trial_id, worker_id=worker), timeout=60)
            if measured and time.time() <= end:
                out.suggest.append(suggested - started)
                out.cycle.append(time.perf_counter() - started)
    return out


def _echoes(address: str, worker: str, window: Window, trial_seconds: float) -> Samples:
    begin, measure_from, end = window
    out = Samples()
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="")
        time.sleep(max(0.0, begin - time.time()))
        while time.time() < end:
            started = time.perf_counter()
            stub.Check(request, timeout=60)
            if time.time() >= measure_from:
                out.echo.append(time.perf_counter() - started)
    return out


def _client_process(
    kind: str, address: str, workers: Sequence[str], window: Window, trial_seconds: float
) -> dict[str, Any]:
    target = _cycles if kind == "cycles" else _echoes
    results: list[Samples] = []
    threads = [
        threading.Thread(target=lambda w=w: results.append(target(address, w, window, trial_seconds))) for w in workers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = Samples()
    for result in results:
        total.merge(result.__dict__)
    return total.__dict__


@dataclass(frozen=True)
class Load:
    address: str
    meter: CpuMeter
    seconds: float
    warmup: float
    processes: int = 8


Cpu = tuple[float, float, float]
"""Server CPU seconds, database CPU seconds, machine busy share (see CpuMeter.end)."""


def drive(
    load: Load, kind: str, workers: int, trial_seconds: float = 0.0, seconds: float | None = None
) -> tuple[Samples, float, Cpu]:
    """Runs `workers` simulated workers (threads spread over client processes); returns their
    samples, the measured window's length and the CPU spent in it (see CpuMeter.end)."""
    seconds = seconds or load.seconds
    procs = min(workers, load.processes)
    names = [f"bench-{kind}-{i}" for i in range(workers)]
    with ProcessPoolExecutor(procs, mp_context=get_context("spawn")) as pool:
        begin = time.time() + 2.0  # the client processes start meanwhile
        window = (begin, begin + load.warmup, begin + load.warmup + seconds)
        futures = [
            pool.submit(_client_process, kind, load.address, names[i::procs], window, trial_seconds)
            for i in range(procs)
        ]
        time.sleep(max(0.0, window[1] - time.time()))
        load.meter.begin()
        time.sleep(max(0.0, window[2] - time.time()))
        cpu = load.meter.end()
        total = Samples()
        for future in futures:
            total.merge(future.result())
    return total, seconds, cpu


# --- reporting -------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class Cell:
    backend: str
    history: int
    workers: int
    suggest_p50: float
    suggest_p99: float
    cycle_p50: float
    cycle_p99: float
    cycles_per_s: float
    waits_per_s: float
    server_cpu_per_cycle: float
    database_cpu_per_cycle: float
    machine_busy: float

    def row(self) -> str:
        per = (f"{self.server_cpu_per_cycle * 1000:7.1f} {self.database_cpu_per_cycle * 1000:6.1f}"
               if self.cycles_per_s else f"{'-':>7} {'-':>6}")  # fmt: skip
        return (f"{self.backend:>10} {self.history:>7} {self.workers:>4} {self.suggest_p50 * 1000:8.2f} "
                f"{self.suggest_p99 * 1000:8.2f} {self.cycle_p50 * 1000:8.2f} {self.cycle_p99 * 1000:8.2f} "
                f"{self.cycles_per_s:8.1f} {self.cycles_per_s * RPCS_PER_CYCLE:6.0f} {self.waits_per_s:6.1f} "
                f"{per} {self.machine_busy * 100:5.0f}%")  # fmt: skip


HEADER = (
    f"{'database':>10} {'history':>7} {'wkrs':>4} {'sug p50':>8} {'sug p99':>8} {'cyc p50':>8} {'cyc p99':>8} "
    f"{'cycles/s':>8} {'RPC/s':>6} {'wait/s':>6} {'srv cpu':>7} {'db cpu':>6} {'busy':>6}\n"
    f"{'':>10} {'trials':>7} {'':>4} {'ms':>8} {'ms':>8} {'ms':>8} {'ms':>8} {'':>8} {'':>6} {'':>6} "
    f"{'ms/cyc':>7} {'ms/cyc':>6} {'CPUs':>6}"
)


@dataclass(frozen=True)
class Floor:
    echo_p50: float
    echo_per_s_8: float
    commit_p50: float


def cell(backend: str, history: int, workers: int, samples: Samples, seconds: float, cpu: Cpu) -> Cell:
    cycles = len(samples.cycle)
    server, database, busy = cpu
    return Cell(
        backend, history, workers, pct(samples.suggest, 0.5), pct(samples.suggest, 0.99), pct(samples.cycle, 0.5),
        pct(samples.cycle, 0.99), cycles / seconds, samples.waits / seconds, server / max(cycles, 1),
        database / max(cycles, 1), busy * (os.cpu_count() or 1),
    )  # fmt: skip


def matrix(
    backend: str, postgres: Postgres | None, args: argparse.Namespace, workdir: Path
) -> tuple[list[Cell], Floor]:
    cells: list[Cell] = []
    floor: Floor | None = None
    for history in args.history:
        started = time.perf_counter()
        url = fresh_database(backend, postgres, f"bench_{backend}_{history}", workdir)
        load_history(url, history, args.population)
        print(f"# {backend}: {history} trials loaded in {time.perf_counter() - started:.0f}s", flush=True)
        with server(url, workdir / f"server-{backend}.log", args.rpc_threads) as (address, pid):
            meter = CpuMeter(pid, postgres if backend == "postgresql" else None)
            load = Load(address, meter, args.seconds, args.warmup)
            if floor is None:
                one = drive(load, "echo", 1)[0]
                eight, seconds, _ = drive(load, "echo", 8)
                floor = Floor(pct(one.echo, 0.5), len(eight.echo) / seconds, commit_floor(url, 500))
            for workers in args.workers:
                cells.append(cell(backend, history, workers, *drive(load, "cycles", workers)))
                print(cells[-1].row(), flush=True)
                if args.profile and backend == "postgresql" and history == max(args.history) and workers == 8:
                    profile(load, args.profile, url)
    assert floor is not None
    return cells, floor


def profile(load: Load, out: Path, url: str) -> None:
    """During another 8-worker run: py-spy on the server (where its GIL-holding time goes) and a
    sampler of pg_stat_activity (what the service's database sessions are doing)."""
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "server-8-workers.txt"
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    seconds = str(int(load.warmup + load.seconds + 2))
    spy = subprocess.Popen([py_spy, "record", "--pid", str(load.meter.server_pid), "--gil", "--rate", "250",
                            "--format", "raw", "--output", str(raw), "--duration", seconds],
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
    sessions: Counter[str] = Counter()
    done = threading.Event()
    sampler = threading.Thread(target=sample_sessions, args=(url, sessions, done))
    sampler.start()
    drive(load, "cycles", 8)
    done.set()
    sampler.join()
    spy.wait(timeout=120)
    print("  server profile, 8 workers, samples holding the GIL (py-spy --gil), by innermost frame's package:")
    for line in summarize_profile(raw):
        print("   ", line)
    total = sum(sessions.values()) or 1
    print("  the service's database sessions (pg_stat_activity sampled every 5 ms), share of session-samples:")
    for state, count in sessions.most_common():
        print(f"    {state:<40} {count / total * 100:5.1f}%")
    print("  one worker, the servicer called in this process (no gRPC), p50 per call:")
    for line in breakdown(url):
        print("   ", line)


def breakdown(url: str, cycles: int = 300) -> list[str]:
    """Wall time, this process's CPU time, and the statements with the time spent in them
    (SQLAlchemy's cursor events) of each call of a cycle."""
    storage = SqlStorage.from_url(url)
    servicer = PbtServicer(storage)
    spent = {"seconds": 0.0, "statements": 0.0, "started": 0.0}

    def before(*_: Any) -> None:
        spent["started"] = time.perf_counter()

    def after(*_: Any) -> None:
        spent["seconds"] += time.perf_counter() - spent["started"]
        spent["statements"] += 1

    event.listen(storage.engine, "before_cursor_execute", before)
    event.listen(storage.engine, "after_cursor_execute", after)
    rows: dict[str, list[tuple[float, float, float, float]]] = {}

    def timed(name: str, call: Any, request: Any) -> Any:
        spent["seconds"] = spent["statements"] = 0.0
        wall, cpu = time.perf_counter(), time.process_time()
        reply = call(request, _Context())
        sample = (time.perf_counter() - wall, time.process_time() - cpu, spent["seconds"], spent["statements"])
        rows.setdefault(name, []).append(sample)
        return reply

    for _ in range(cycles):
        suggest = pbt_service_pb2.GetNewSuggestionRequest(study=STUDY, worker_id="breakdown")
        trial_id = timed("GetNewSuggestion", servicer.GetNewSuggestion, suggest).trials[0].id
        for step in (1, 2):
            measurement = trial_pb2.Measurement(step=step, metrics={"score": 0.5})
            timed("ReportMeasurement", servicer.ReportMeasurement, pbt_service_pb2.ReportMeasurementRequest(
                trial_id=trial_id, worker_id="breakdown", measurement=measurement))  # fmt: skip
        complete = pbt_service_pb2.CompleteTrialRequest(trial_id=trial_id, worker_id="breakdown")
        timed("CompleteTrial", servicer.CompleteTrial, complete)
    storage.close()
    lines = []
    for name, samples in rows.items():
        wall, cpu, db, count = (pct([s[i] for s in samples[cycles // 10 :]], 0.5) for i in range(4))
        lines.append(f"{name:<18} wall {wall * 1000:5.2f} ms, CPU of this process {cpu * 1000:5.2f} ms, "
                     f"{count:.0f} statements taking {db * 1000:5.2f} ms")  # fmt: skip
    return lines


class _Context:
    """The little of grpc.ServicerContext that the servicer uses."""

    def time_remaining(self) -> float:
        return 10.0

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise RuntimeError(f"{code}: {details}")


def sample_sessions(url: str, sessions: Counter[str], done: threading.Event) -> None:
    """Counts the states of the other sessions on the database until `done`: running a statement,
    waiting for a lock (and which), or idle inside a transaction, i.e. waiting for the server."""
    engine = make_engine(url)
    query = text(
        "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        while not done.is_set():
            for state, kind, event in connection.execute(query):
                if state == "active":
                    label = f"waiting for {kind} {event}" if kind in ("Lock", "LWLock", "IO") else "running a statement"
                elif state == "idle in transaction":
                    label = "in a transaction, waiting for the server"
                else:
                    label = "idle (no transaction)"
                sessions[label] += 1
            time.sleep(0.005)
    engine.dispose()


CATEGORIES = (
    ("grpc", "gRPC runtime"), ("google/protobuf", "protobuf"), ("sqlalchemy", "SQLAlchemy"), ("psycopg2", "psycopg2"),
    ("pbt_service/store", "pbt_service.store"), ("pbt_service/converters", "pbt_service.converters"),
    ("pbt_service/core", "pbt_service.core"), ("pbt_service", "pbt_service (servicer)"), ("pbt/v1", "generated protos"),
)  # fmt: skip


def summarize_profile(raw: Path) -> list[str]:
    """Shares of samples by the package of the innermost Python frame, and by whether a
    SQLAlchemy or gRPC frame is anywhere on the stack."""
    innermost: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        innermost[next((name for key, name in CATEGORIES if key in frames[-1]), "other (stdlib, threading)")] += count
        for key, name in (("sqlalchemy", "SQLAlchemy"), ("pbt_service/store", "store"), ("grpc/", "gRPC")):
            if any(key in f for f in frames):
                anywhere[name] += count
    lines = [f"{name:<28} {count / total * 100:5.1f}%" for name, count in innermost.most_common()]
    lines += [f"stack holds {name:<16} {count / total * 100:5.1f}%" for name, count in anywhere.most_common()]
    return lines or ["no samples"]


def scaling(postgres: Postgres | None, args: argparse.Namespace, workdir: Path) -> None:
    """Figure 12(b): generations per hour against workers, trials of `trial_seconds`."""
    print(f"\nfigure 12(b): trials of {args.trial_seconds:g}s (suggest, sleep, report, sleep, report, complete), "
          f"postgresql, {args.scaling_seconds:g}s per cell")  # fmt: skip
    print(f"{'population':>10} {'workers':>7} {'trials/s':>9} {'gens/hour':>10} {'efficiency':>10} {'min(N,P)/N':>10}")
    for population in args.scaling_population:
        url = fresh_database("postgresql", postgres, f"bench_scaling_{population}", workdir)
        load_history(url, population * 20, population)
        base = 0.0
        with server(url, workdir / "server-scaling.log", args.rpc_threads) as (address, pid):
            load = Load(address, CpuMeter(pid, postgres), args.scaling_seconds, args.warmup)
            for workers in args.workers:
                samples, seconds, _ = drive(load, "cycles", workers, args.trial_seconds)
                rate = len(samples.cycle) / seconds
                base = base or rate
                bound = min(workers, population) / workers
                print(f"{population:>10} {workers:>7} {rate:9.2f} {rate * 3600 / population:10.0f} "
                      f"{rate / (workers * base):10.2f} {bound:10.2f}", flush=True)  # fmt: skip


def targets(cells: list[Cell], floor: Floor, args: argparse.Namespace) -> None:
    pg = {(c.history, c.workers): c for c in cells if c.backend == "postgresql"}
    low, high = min(args.history), max(args.history)
    print(f"\ntargets (postgresql, one service process, population {args.population}; ratios from this run)")
    if (low, 1) in pg and (high, 1) in pg:
        flat = pg[high, 1].suggest_p50 / pg[low, 1].suggest_p50
        print(f"  GetNewSuggestion p50, 1 worker, {high} / {low} trials of history: {flat:.2f} (target <= 1.5)")
        bound = floor.echo_p50 + floor.commit_p50
        print(f"  GetNewSuggestion p50, 1 worker, {high} trials / (echo {floor.echo_p50 * 1000:.2f} ms + commit "
              f"{floor.commit_p50 * 1000:.2f} ms): {pg[high, 1].suggest_p50 / bound:.2f} (target <= 3)")  # fmt: skip
    cycle_floor = floor.echo_per_s_8 / RPCS_PER_CYCLE
    for history in args.history:
        if (history, 8) in pg:
            ratio = pg[history, 8].cycles_per_s / cycle_floor
            print(f"  cycles/s, 8 workers, {history} trials: {pg[history, 8].cycles_per_s:.1f} / floor "
                  f"({floor.echo_per_s_8:.0f} echoes/s / {RPCS_PER_CYCLE}) = {ratio:.2f} (target >= 0.7)")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.quick:
        args.history, args.seconds, args.warmup, args.scaling_seconds = [1000, 100_000], 3.0, 1.0, 8.0
    workdir = Path(tempfile.mkdtemp(prefix="pbt-bench-"))
    print(f"service load: population {args.population}, {os.cpu_count()} CPUs, {args.seconds:g}s per cell after "
          f"{args.warmup:g}s warm-up, server --max-workers {args.rpc_threads}")  # fmt: skip
    given = Postgres(args.postgres_url) if args.postgres_url else None
    with nullcontext(given) if given or "postgresql" not in args.databases else throwaway_postgres() as postgres:
        cells: list[Cell] = []
        floors: dict[str, Floor] = {}
        print(HEADER)
        for backend in args.databases:
            backend_cells, floors[backend] = matrix(backend, postgres, args, workdir)
            cells += backend_cells
        print(f"\nfloors    {'echo p50 ms':>12} {'echoes/s (8 clients)':>21} {'commit p50 ms':>14}")
        for backend, f in floors.items():
            print(f"{backend:>10} {f.echo_p50 * 1000:12.3f} {f.echo_per_s_8:21.0f} {f.commit_p50 * 1000:14.3f}")
        if "postgresql" in floors:
            targets(cells, floors["postgresql"], args)
            if args.scaling_population:
                scaling(postgres, args, workdir)
    shutil.rmtree(workdir, ignore_errors=True)


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="histories 1k and 100k, 3 s cells, 8 s scaling cells")
    p.add_argument("--databases", type=lambda s: s.split(","), default=["postgresql", "sqlite"])
    p.add_argument("--history", type=_ints, default=[1000, 10_000, 100_000], help="trials already in the study")
    p.add_argument("--workers", type=_ints, default=[1, 8, 32, 64])
    p.add_argument("--population", type=int, default=20)
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per cell")
    p.add_argument("--warmup", type=float, default=1.5)
    p.add_argument("--rpc-threads", type=int, default=16, help="the server's --max-workers")
    p.add_argument("--trial-seconds", type=float, default=1.0, help="trial length in the figure 12 sweep")
    p.add_argument("--scaling-seconds", type=float, default=20.0)
    p.add_argument("--scaling-population", type=_ints, default=[20, 64], help="empty: skip the figure 12 sweep")
    p.add_argument("--profile", type=Path, help="sample the server with py-spy, writing raw stacks here")
    p.add_argument("--postgres-url", help="an existing server (admin URL) instead of a throwaway one")
    return p


if __name__ == "__main__":
    main()
