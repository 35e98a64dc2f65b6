"""Service load: throughput, latency, CPU and SQL statements per call of simulated workers against
a real `pbt-service serve`, with the floors and Optuna's RDB storage measured in the same run.

One `pbt-service serve` process per database (PostgreSQL, SQLite) on studies that already hold
1k, 10k and 100k trials (bulk-inserted, not sent through the API), driven by 1, 8, 32 and 64
simulated workers (threads in up to 8 spawned client processes, raw gRPC stubs). A worker runs
full cycles with no training in between: GetNewSuggestion, two ReportMeasurement, CompleteTrial.
Every client process connects and reports ready before a cell's common start (a barrier), and a
cell without a single measured cycle, or with a failed client, makes the run exit 1.

Measured in the same run: the floors (a bare gRPC round trip to the same server, the health
service's Check; one committed single-row UPDATE on the same database), the CPU per cycle of the
service process and of PostgreSQL (from /proc), the SQL statements per call (pg_stat_statements),
Optuna's ask/tell with RandomSampler on the same PostgreSQL with the same worker counts, the
targets of issue 8 with met/missed, and the paper's figure 12(b).

    PYTHONPATH=. python benchmarks/service_load.py --quick    # < 5 min, noisier
    PYTHONPATH=. python benchmarks/service_load.py            # full run
    PYTHONPATH=. python benchmarks/service_load.py --quick --markdown /tmp/load.md   # also markdown

PostgreSQL is a throwaway server with its default (durable) settings plus pg_stat_statements,
started from /usr/lib/postgresql/*/bin, unless `--postgres-url` names one where the user may
CREATE DATABASE (statements are then counted only if it preloads pg_stat_statements).
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

if __package__ in (None, ""):  # run as a script: make `benchmarks.load` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc  # noqa: E402
from sqlalchemy import text  # noqa: E402

from benchmarks.load import history  # noqa: E402
from benchmarks.load.clients import Job, Samples, run_cell  # noqa: E402
from benchmarks.load.system import (  # noqa: E402
    BenchmarkError,
    Cpu,
    CpuMeter,
    Postgres,
    Server,
    StatementCounter,
    StatementUse,
    commit_floor,
    driver_url,
    fresh_database,
    pct,
    server,
    throwaway_postgres,
)
from pbt_service.api.v1 import pbt_service_pb2, pbt_service_pb2_grpc, trial_pb2  # noqa: E402

RPCS_PER_CYCLE = 4
T = TypeVar("T")
OPTUNA = "optuna/pg"


# --- tables ----------------------------------------------------------------------------------


@dataclass
class Table:
    """A table printed row by row as the run goes, and rendered as markdown at the end."""

    title: str
    columns: list[tuple[str, int]]  # (title, width); a title may hold "name|unit"
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    left_first: bool = False  # the first column left-aligned (a text column)

    def _cell(self, value: str, index: int, width: int) -> str:
        return f"{value:<{width}}" if index == 0 and self.left_first else f"{value:>{width}}"

    def header(self) -> str:
        top = " ".join(self._cell(c.split("|")[0], i, w) for i, (c, w) in enumerate(self.columns))
        units = " ".join(self._cell((c.split("|") + [""])[1], i, w) for i, (c, w) in enumerate(self.columns))
        return f"\n{self.title}\n{top}" + (f"\n{units}" if units.strip() else "")

    def add(self, row: list[str]) -> str:
        self.rows.append(row)
        return " ".join(self._cell(v, i, w) for i, (v, (_, w)) in enumerate(zip(row, self.columns, strict=False)))

    def note(self, line: str) -> str:
        self.notes.append(line)
        return f"  {line}"

    def markdown(self) -> str:
        names = [c.replace("|", " ").strip() for c, _ in self.columns]
        align = ["---" if i == 0 and self.left_first else "---:" for i in range(len(names))]
        lines = [f"**{self.title}**", "", "| " + " | ".join(names) + " |", "|" + "|".join(align) + "|"]
        lines += ["| " + " | ".join(row + [""] * (len(names) - len(row))) + " |" for row in self.rows]
        lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines).rstrip() + "\n"


def ms(seconds: float, digits: int = 2) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.{digits}f}"


# --- results -----------------------------------------------------------------------------------


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
    client_cpu_per_cycle: float
    busy_cpus: float

    def row(self) -> list[str]:
        rpcs = "-" if self.backend == OPTUNA else f"{self.cycles_per_s * RPCS_PER_CYCLE:.0f}"
        server_cpu = "-" if self.backend == OPTUNA else ms(self.server_cpu_per_cycle, 1)
        database_cpu = "-" if self.backend == "sqlite" else ms(self.database_cpu_per_cycle, 1)
        return [self.backend, str(self.history), str(self.workers), ms(self.suggest_p50), ms(self.suggest_p99),
                ms(self.cycle_p50), ms(self.cycle_p99), f"{self.cycles_per_s:.1f}", rpcs, f"{self.waits_per_s:.1f}",
                server_cpu, database_cpu, ms(self.client_cpu_per_cycle, 1), f"{self.busy_cpus * 100:.0f}%"]  # fmt: skip


MAIN_COLUMNS = [
    ("database", 10), ("history|trials", 8), ("wkrs", 4), ("sug p50|ms", 8), ("sug p99|ms", 8), ("cyc p50|ms", 8),
    ("cyc p99|ms", 8), ("cycles/s", 8), ("RPC/s", 6), ("wait/s", 6), ("srv cpu|ms/cyc", 7), ("db cpu|ms/cyc", 7),
    ("load cpu|ms/cyc", 8), ("busy|CPUs", 6),
]  # fmt: skip


@dataclass(frozen=True)
class Floor:
    echo_p50: float
    echo_per_s_8: float
    commit_p50: float


@dataclass
class Report:
    args: argparse.Namespace
    main: Table
    cells: list[Cell] = field(default_factory=list)
    floors: dict[str, Floor] = field(default_factory=dict)
    statements: dict[tuple[int, str], StatementUse] = field(default_factory=dict)  # (history, rpc)
    failures: list[str] = field(default_factory=list)
    extra: list[Table] = field(default_factory=list)

    def cell(self, backend: str, history_size: int, workers: int) -> Cell | None:
        return next((c for c in self.cells if (c.backend, c.history, c.workers) == (backend, history_size, workers)),
                    None)  # fmt: skip

    def fail(self, message: str) -> None:
        self.failures.append(message)
        print(f"FAILED: {message}", file=sys.stderr, flush=True)


def to_cell(backend: str, history_size: int, workers: int, samples: Samples, cpu: Cpu, seconds: float) -> Cell:
    cycles = len(samples.cycle)
    per = max(cycles, 1)
    return Cell(
        backend, history_size, workers, pct(samples.suggest, 0.5), pct(samples.suggest, 0.99),
        pct(samples.cycle, 0.5), pct(samples.cycle, 0.99), cycles / seconds, samples.waits / seconds,
        cpu.server / per, cpu.database / per, samples.client_cpu / per, cpu.busy * (os.cpu_count() or 1),
    )  # fmt: skip


def measure(report: Report, job: Job, workers: int, meter: CpuMeter, what: str) -> tuple[Samples, Cpu] | None:
    """One cell; None (and a recorded failure) when it failed or measured nothing."""
    try:
        samples, cpu = run_cell(job, workers, meter)
    except BenchmarkError as error:
        report.fail(f"{what}, {workers} workers: {error}")
        return None
    if samples.errors:
        report.fail(f"{what}, {workers} workers: {len(samples.errors)} client errors, first: {samples.errors[0]}")
        return None
    if not (samples.cycle if job.kind != "echo" else samples.echo):
        report.fail(f"{what}, {workers} workers: empty cell, nothing completed in {job.seconds:g}s "
                    f"({samples.waits} suggestions answered 'wait')")  # fmt: skip
        return None
    return samples, cpu


# --- the PBT matrix ------------------------------------------------------------------------------


@contextmanager
def study_server(
    backend: str, postgres: Postgres | None, args: argparse.Namespace, workdir: Path, size: int, population: int,
    name: str,
) -> Iterator[tuple[Server, str]]:
    """A fresh database holding the study with `size` trials of history, and a server on it."""
    started = time.perf_counter()
    url = fresh_database(backend, postgres, name, workdir)
    with server(url, workdir / f"server-{name}.log", args.rpc_threads) as running:
        history.create_study(running.address, population)
        history.load_history(url, size, population)
        history.check_history(running.address, size, population)
        print(f"# {backend}: {size} trials loaded in {time.perf_counter() - started:.0f}s", flush=True)
        yield running, url


def matrix(backend: str, postgres: Postgres | None, args: argparse.Namespace, workdir: Path, report: Report) -> None:
    for size in args.history:
        name = f"bench_{backend}_{size}"
        with study_server(backend, postgres, args, workdir, size, args.population, name) as (running, url):
            database_pid = postgres.postmaster() if postgres and backend == "postgresql" else None
            meter = CpuMeter(running.pid, database_pid)
            if backend not in report.floors:
                report.floors[backend] = floors(report, running, meter, url, args, backend)
            job = Job("cycles", running.address, history.STUDY, args.warmup, args.seconds)
            for workers in args.workers:
                measured = measure(report, job, workers, meter, f"{backend}, {size} trials")
                running.check_alive()
                if measured is not None:
                    cell = to_cell(backend, size, workers, *measured, args.seconds)
                    report.cells.append(cell)
                    print(report.main.add(cell.row()), flush=True)
                if args.profile and backend == "postgresql" and size == max(args.history) and workers == 8:
                    profile(job, meter, args.profile, url, running)
            if backend == "postgresql" and postgres is not None:
                count_statements(report, running, postgres, name, size, args)


def floors(report: Report, running: Server, meter: CpuMeter, url: str, args: argparse.Namespace, backend: str) -> Floor:
    job = Job("echo", running.address, "", args.warmup, args.seconds)
    one = measure(report, job, 1, meter, f"{backend} echo floor")
    eight = measure(report, job, 8, meter, f"{backend} echo floor")
    return Floor(pct(one[0].echo, 0.5) if one else math.nan, len(eight[0].echo) / args.seconds if eight else math.nan,
                 commit_floor(url, 500))  # fmt: skip


def count_statements(
    report: Report, running: Server, postgres: Postgres, database: str, size: int, args: argparse.Namespace
) -> None:
    """One worker, sequential cycles from this process; pg_stat_statements read between the calls."""
    try:
        counter = StatementCounter(postgres, database)
    except Exception as error:  # an external server without the preloaded library
        report.fail(f"SQL statements not counted (pg_stat_statements unavailable: {str(error).splitlines()[0]})")
        return
    deltas: dict[str, list[dict[str, tuple[int, float]]]] = {}
    with grpc.insecure_channel(running.address) as channel:
        stub = pbt_service_pb2_grpc.PbtServiceStub(channel)

        def timed(rpc: str, call: Callable[[], T], keep: bool) -> T:
            before = counter.snapshot()
            reply = call()
            if keep:
                deltas.setdefault(rpc, []).append(counter.diff(before, counter.snapshot()))
            return reply

        for i in range(5 + args.statement_cycles):
            keep = i >= 5  # the first cycles open the server's connections
            request = pbt_service_pb2.GetNewSuggestionRequest(study=history.STUDY, worker_id="bench-count")
            suggestion = timed("GetNewSuggestion", partial(stub.GetNewSuggestion, request, timeout=60), keep)
            if not suggestion.trials:
                report.fail(f"statement count, {size} trials: no trial suggested")
                counter.close()
                return
            trial_id = suggestion.trials[0].id
            for step in (1, 2):
                report_request = pbt_service_pb2.ReportMeasurementRequest(
                    trial_id=trial_id, worker_id="bench-count",
                    measurement=trial_pb2.Measurement(step=step, metrics={"score": 0.5}))  # fmt: skip
                timed("ReportMeasurement", partial(stub.ReportMeasurement, report_request, timeout=60), keep)
            complete = pbt_service_pb2.CompleteTrialRequest(trial_id=trial_id, worker_id="bench-count")
            timed("CompleteTrial", partial(stub.CompleteTrial, complete, timeout=60), keep)
    counter.close()
    for rpc, calls in deltas.items():
        report.statements[size, rpc] = StatementCounter.use(calls)


STATEMENT_COLUMNS = [("history|trials", 8), ("RPC", 18), ("calls", 6), ("statements|per call", 10),
                     ("BEGIN/COMMIT|per call", 12), ("db exec|ms/call", 8)]  # fmt: skip


def statements_table(report: Report) -> Table:
    table = Table("SQL statements per call (pg_stat_statements; 1 worker, sequential; statements exclude "
                  "BEGIN/COMMIT/ROLLBACK/SAVEPOINT, counted separately)", STATEMENT_COLUMNS)  # fmt: skip
    for (size, rpc), use in sorted(report.statements.items()):
        table.add([str(size), rpc, str(use.calls), f"{use.statements:.1f}", f"{use.transaction_control:.1f}",
                   f"{use.exec_ms:.2f}"])  # fmt: skip
    return table


# --- Optuna ------------------------------------------------------------------------------------


def optuna_matrix(postgres: Postgres, args: argparse.Namespace, workdir: Path, report: Report) -> None:
    """Optuna's RDB storage (ask/tell, RandomSampler) on the same PostgreSQL: a fresh study per
    cell, the same worker counts, threads in up to 8 client processes."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = driver_url(fresh_database("postgresql", postgres, "bench_optuna", workdir, migrate=False))
    meter = CpuMeter(None, postgres.postmaster())
    for workers in args.workers:
        study = f"load-{workers}"
        optuna.create_study(study_name=study, storage=url, direction="maximize")
        job = Job("optuna", url, study, args.warmup, args.seconds)
        measured = measure(report, job, workers, meter, "optuna")
        if measured is not None:
            cell = to_cell(OPTUNA, 0, workers, *measured, args.seconds)
            report.cells.append(cell)
            print(report.main.add(cell.row()), flush=True)


# --- targets -----------------------------------------------------------------------------------


def targets(report: Report) -> Table:
    """Issue 8's targets for PostgreSQL, from this run, met or missed."""
    args = report.args
    table = Table(f"targets (postgresql, one service process, population {args.population}, this run)",
                  [("target", 70), ("measured", 9), ("limit", 7), ("result", 12)], left_first=True)  # fmt: skip
    low, high = min(args.history), max(args.history)

    def row(name: str, value: float | None, limit: float, at_most: bool, digits: int = 2) -> None:
        if value is None or math.isnan(value):
            print(table.add([name, "-", f"{'<=' if at_most else '>='} {limit:g}", "not measured"]))
            return
        met = value <= limit if at_most else value >= limit
        print(table.add([name, f"{value:.{digits}f}", f"{'<=' if at_most else '>='} {limit:g}",
                         "met" if met else "MISSED"]))  # fmt: skip

    print(table.header())
    for size in args.history:
        c = report.cell("postgresql", size, 8)
        row(f"cycles/s, 8 workers, {size} trials", c.cycles_per_s if c else None, 350, False, 1)
        row(f"service CPU ms/cycle, 8 workers, {size} trials", c.server_cpu_per_cycle * 1000 if c else None, 2.5, True)
        row(f"database CPU ms/cycle, 8 workers, {size} trials", c.database_cpu_per_cycle * 1000 if c else None, 1.5,
            True)  # fmt: skip
    floor = report.floors.get("postgresql")
    one = report.cell("postgresql", high, 1)
    bound = floor.echo_p50 + floor.commit_p50 if floor else math.nan
    row(f"GetNewSuggestion p50, 1 worker, {high} trials / (echo + commit)", one.suggest_p50 / bound if one else None,
        3, True)  # fmt: skip
    if floor:
        table.note(f"floor: echo p50 {ms(floor.echo_p50, 3)} ms + commit p50 {ms(floor.commit_p50, 3)} ms "
                   f"= {ms(bound, 3)} ms")  # fmt: skip
    eight = report.cell("postgresql", high, 8)
    row(f"GetNewSuggestion p50 ms, 8 workers, {high} trials", eight.suggest_p50 * 1000 if eight else None, 10, True)
    for rpc, limit in (("GetNewSuggestion", 3.0), ("ReportMeasurement", 2.0)):
        use = report.statements.get((high, rpc))
        row(f"SQL statements per {rpc}, {high} trials (no BEGIN/COMMIT)", use.statements if use else None, limit,
            True, 1)  # fmt: skip
    first, last = report.cell("postgresql", low, 1), report.cell("postgresql", high, 1)
    flat = last.suggest_p50 / first.suggest_p50 if first and last and low != high else None
    row(f"GetNewSuggestion p50, 1 worker, {high} / {low} trials", flat, 1.2, True)
    pbt, optuna = report.cell("postgresql", low, 8), report.cell(OPTUNA, 0, 8)
    ratio = pbt.cycles_per_s / optuna.cycles_per_s if pbt and optuna else None
    row(f"cycles/s PBT ({low} trials) / Optuna, 8 workers", ratio, 7, False)
    for workers in args.workers:
        p, o = report.cell("postgresql", low, workers), report.cell(OPTUNA, 0, workers)
        if p and o and workers != 8:
            table.note(f"PBT/Optuna cycles/s with {workers} workers: {p.cycles_per_s:.1f} / {o.cycles_per_s:.1f} "
                       f"= {p.cycles_per_s / o.cycles_per_s:.2f}")  # fmt: skip
    for line in table.notes:
        print(f"  {line}")
    return table


# --- figure 12(b) --------------------------------------------------------------------------------


def scaling(postgres: Postgres | None, args: argparse.Namespace, workdir: Path, report: Report) -> Table:
    """Figure 12(b): generations per hour against workers, trials of `trial_seconds`."""
    table = Table(f"figure 12(b): trials of {args.trial_seconds:g}s (suggest, sleep, report, sleep, report, "
                  f"complete), postgresql, {args.scaling_seconds:g}s per cell",
                  [("population", 10), ("workers", 7), ("trials/s", 9), ("gens/hour", 10), ("efficiency", 10),
                   ("min(N,P)/N", 10)])  # fmt: skip
    print(table.header(), flush=True)
    for population in args.scaling_population:
        name = f"bench_scaling_{population}"
        with study_server("postgresql", postgres, args, workdir, population * 20, population, name) as (running, _):
            meter = CpuMeter(running.pid, postgres.postmaster() if postgres else None)
            job = Job("cycles", running.address, history.STUDY, args.warmup, args.scaling_seconds, args.trial_seconds)
            base = 0.0
            for workers in args.workers:
                measured = measure(report, job, workers, meter, f"figure 12(b), population {population}")
                if measured is None:
                    continue
                rate = len(measured[0].cycle) / args.scaling_seconds
                base = base or rate
                bound = min(workers, population) / workers
                print(table.add([str(population), str(workers), f"{rate:.2f}", f"{rate * 3600 / population:.0f}",
                                 f"{rate / (workers * base):.2f}", f"{bound:.2f}"]), flush=True)  # fmt: skip
    return table


# --- profile -------------------------------------------------------------------------------------


def profile(job: Job, meter: CpuMeter, out: Path, url: str, running: Server) -> None:
    """During another 8-worker run: py-spy on the server (where its GIL-holding time goes) and a
    sampler of pg_stat_activity (what the service's database sessions are doing)."""
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "server-8-workers.txt"
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    seconds = str(int(job.warmup + job.seconds + 5))
    spy = subprocess.Popen([py_spy, "record", "--pid", str(running.pid), "--gil", "--rate", "250", "--format", "raw",
                            "--output", str(raw), "--duration", seconds],
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
    sessions: Counter[str] = Counter()
    done = threading.Event()
    sampler = threading.Thread(target=sample_sessions, args=(url, sessions, done))
    sampler.start()
    try:
        run_cell(job, 8, meter)
    finally:
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


def sample_sessions(url: str, sessions: Counter[str], done: threading.Event) -> None:
    """Counts the states of the other sessions on the database until `done`: running a statement,
    waiting for a lock (and which), or idle inside a transaction, i.e. waiting for the server."""
    from sqlalchemy import create_engine

    engine = create_engine(driver_url(url), isolation_level="AUTOCOMMIT")
    query = text(
        "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    )
    with engine.connect() as connection:
        while not done.is_set():
            for state, kind, wait in connection.execute(query):
                if state == "active":
                    label = f"waiting for {kind} {wait}" if kind in ("Lock", "LWLock", "IO") else "running a statement"
                elif state == "idle in transaction":
                    label = "in a transaction, waiting for the server"
                else:
                    label = "idle (no transaction)"
                sessions[label] += 1
            time.sleep(0.005)
    engine.dispose()


CATEGORIES = (
    ("grpc", "gRPC runtime"), ("google/protobuf", "protobuf"), ("sqlalchemy", "SQLAlchemy"), ("psycopg", "psycopg"),
    ("pbt_service/store", "pbt_service.store"), ("pbt_service/converters", "pbt_service.converters"),
    ("pbt_service/core", "pbt_service.core"), ("pbt_service/api", "generated protos"),
    ("pbt_service", "pbt_service (other)"),
)  # fmt: skip


def summarize_profile(raw: Path) -> list[str]:
    """Shares of samples by the package of the innermost Python frame, and by whether a
    SQLAlchemy or gRPC frame is anywhere on the stack."""
    if not raw.exists():
        return ["no profile (is py-spy installed? pip install py-spy)"]
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


# --- main ----------------------------------------------------------------------------------------


def guarded(report: Report, step: Callable[..., T], *args: object) -> T | None:
    """Runs one part of the benchmark; a BenchmarkError fails the run but not the other parts."""
    try:
        return step(*args)
    except BenchmarkError as error:
        report.fail(str(error))
        return None


def summary(report: Report) -> list[Table]:
    """Prints the floors, the statement counts and the targets; returns them as tables."""
    args = report.args
    tables = []
    floor_table = Table("floors", [("database", 10), ("echo p50|ms", 12), ("echoes/s|8 clients", 10),
                                   ("commit p50|ms", 14)])  # fmt: skip
    print(floor_table.header())
    for backend, f in report.floors.items():
        print(floor_table.add([backend, ms(f.echo_p50, 3), f"{f.echo_per_s_8:.0f}", ms(f.commit_p50, 3)]))
    tables.append(floor_table)
    if report.statements:
        table = statements_table(report)
        print(table.header())
        for row in list(table.rows):
            table.rows.remove(row)
            print(table.add(row))
        if args.profile:
            for (size, rpc), use in sorted(report.statements.items()):
                if size == max(args.history):
                    print(f"  {rpc}: " + "; ".join(f"{n:.1f}x {q[:90]}" for q, n in use.by_text))
        tables.append(table)
    if "postgresql" in args.databases:
        tables.append(targets(report))
    return tables



def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        args.history, args.seconds, args.warmup = [1000, 100_000], 3.0, 1.0
        args.scaling_seconds, args.statement_cycles = 5.0, 20
    command = "python benchmarks/service_load.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="pbt-bench-"))
    parameters = (f"population {args.population}, {os.cpu_count()} CPUs, {args.seconds:g}s per cell after "
                  f"{args.warmup:g}s warm-up, server --max-workers {args.rpc_threads}, workers {args.workers} "
                  f"(threads in up to 8 client processes), histories {args.history}")  # fmt: skip
    print(f"$ {command}\nservice load: {parameters}", flush=True)
    report = Report(args, Table("service load", MAIN_COLUMNS))
    print(report.main.header(), flush=True)
    given = Postgres(args.postgres_url) if args.postgres_url else None
    tables: list[Table] = [report.main]
    try:
        with nullcontext(given) if given or "postgresql" not in args.databases else throwaway_postgres() as postgres:
            for backend in args.databases:
                guarded(report, matrix, backend, postgres, args, workdir, report)
                if backend == "postgresql" and postgres is not None and not args.no_optuna:
                    guarded(report, optuna_matrix, postgres, args, workdir, report)
            tables += summary(report)
            if "postgresql" in args.databases and args.scaling_population and postgres is not None:
                tables += guarded(report, lambda: [scaling(postgres, args, workdir, report)]) or []
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    print(f"\nran {elapsed / 60:.1f} min", flush=True)
    if args.markdown:
        body = [f"```\n$ {command}\n```\n", f"Ran {elapsed / 60:.1f} min; {parameters}.\n"]
        body += [t.markdown() for t in tables]
        if report.failures:
            body.append("**failures**\n\n" + "\n".join(f"- {f}" for f in report.failures) + "\n")
        args.markdown.write_text("\n".join(body))
        print(f"markdown written to {args.markdown}")
    if report.failures:
        print(f"\n{len(report.failures)} failure(s); the figures above are incomplete:", file=sys.stderr)
        for failure in report.failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="histories 1k and 100k, 3 s cells after 1 s warm-up, 5 s scaling cells (< 5 min)")  # fmt: skip
    p.add_argument("--databases", type=lambda s: s.split(","), default=["postgresql", "sqlite"])
    p.add_argument("--history", type=_ints, default=[1000, 10_000, 100_000], help="trials already in the study")
    p.add_argument("--workers", type=_ints, default=[1, 8, 32, 64])
    p.add_argument("--population", type=int, default=20)
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per cell")
    p.add_argument("--warmup", type=float, default=1.5, help="seconds run before each cell's measured window")
    p.add_argument("--rpc-threads", type=int, default=16, help="the server's --max-workers")
    p.add_argument("--statement-cycles", type=int, default=50, help="cycles over which SQL statements are counted")
    p.add_argument("--no-optuna", action="store_true", help="skip the Optuna RDB storage rows")
    p.add_argument("--trial-seconds", type=float, default=1.0, help="trial length in the figure 12 sweep")
    p.add_argument("--scaling-seconds", type=float, default=20.0)
    p.add_argument("--scaling-population", type=_ints, default=[20, 64], help="empty: skip the figure 12 sweep")
    p.add_argument("--profile", type=Path, help="sample the server with py-spy, writing raw stacks here")
    p.add_argument("--postgres-url", help="an existing server (admin URL) instead of a throwaway one")
    p.add_argument("--markdown", type=Path, help="also write the tables as markdown to this file")
    return p


if __name__ == "__main__":
    sys.exit(main())
