"""The system under test: a throwaway PostgreSQL (with pg_stat_statements) or a SQLite file, the
`pbt-service serve` subprocess, the floors, and CPU and SQL statement accounting from outside the
processes (`/proc`, `pg_stat_statements`), so nothing here depends on the service's internals."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
TICKS = os.sysconf("SC_CLK_TCK")
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "START TRANSACTION", "END", "SAVEPOINT", "RELEASE")


class BenchmarkError(RuntimeError):
    """A measurement that cannot be trusted (an empty cell, a client that failed, a dead server)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`; NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- databases -------------------------------------------------------------------------------


@dataclass
class Postgres:
    admin_url: str
    pid_file: Path | None = None  # a throwaway server's postmaster.pid, for CPU accounting

    def postmaster(self) -> int | None:
        if self.pid_file is None or not self.pid_file.exists():
            return None
        return int(self.pid_file.read_text().split()[0])

    def url(self, database: str) -> str:
        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)


@contextmanager
def throwaway_postgres() -> Iterator[Postgres]:
    """A PostgreSQL server with default (durable) settings in a temp dir, plus pg_stat_statements
    loaded so that the benchmark can count the service's statements."""
    bin_dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    pg_ctl = shutil.which("pg_ctl") or (str(bin_dirs[0] / "pg_ctl") if bin_dirs else None)
    if pg_ctl is None:
        raise SystemExit("pg_ctl not found: install PostgreSQL or pass --postgres-url")
    home = Path(tempfile.mkdtemp(prefix="pbt-bench-pg-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(home, "postgres", "postgres")
    port = free_port()
    data = home / "data"

    def pg_ctl_run(*args: str) -> None:
        subprocess.run([*as_postgres, pg_ctl, "-D", str(data), *args], check=True, capture_output=True, timeout=120)

    options = (f"-p {port} -k {home} -h 127.0.0.1 -c max_connections=300 "
               "-c shared_preload_libraries=pg_stat_statements")  # fmt: skip
    pg_ctl_run("initdb", "-o", "-A trust -U postgres")
    pg_ctl_run("start", "-w", "-l", str(home / "log"), "-o", options)
    try:
        yield Postgres(f"postgresql://postgres@127.0.0.1:{port}/postgres", data / "postmaster.pid")
    finally:
        pg_ctl_run("stop", "-m", "fast", "-w")
        shutil.rmtree(home, ignore_errors=True)


def driver_url(url: str) -> str:
    """`url` with an explicit PostgreSQL driver that is installed (psycopg 3, else psycopg2), for
    this benchmark's own engines and Optuna's; the service gets the plain URL."""
    parsed = make_url(url)
    if parsed.drivername not in ("postgresql", "postgres"):
        return url
    try:
        import psycopg  # noqa: F401

        driver = "postgresql+psycopg"
    except ImportError:
        driver = "postgresql+psycopg2"
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def admin_engine(postgres: Postgres) -> Engine:
    return create_engine(driver_url(postgres.admin_url), isolation_level="AUTOCOMMIT")


def fresh_database(backend: str, postgres: Postgres | None, name: str, workdir: Path, migrate: bool = True) -> str:
    """An empty database on `backend`; with `migrate`, its schema created by `pbt-service migrate`."""
    if backend == "sqlite":
        url = f"sqlite:///{workdir / (name + '.db')}"
        Path(workdir / (name + ".db")).unlink(missing_ok=True)
    else:
        assert postgres is not None
        admin = admin_engine(postgres)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = postgres.url(name)
    if migrate:
        done = subprocess.run([*service_command(), "migrate", "--database-url", url], capture_output=True, text=True,
                              env=_service_env(), timeout=300)  # fmt: skip
        if done.returncode != 0:
            raise BenchmarkError(f"pbt-service migrate failed ({done.returncode}): {done.stdout}{done.stderr}")
    return url


def engine_for(url: str) -> Engine:
    """A plain SQLAlchemy engine (not the service's), for loading history and the floors; SQLite in
    WAL mode with `BEGIN IMMEDIATE` transactions like the service."""
    if not url.startswith("sqlite"):
        return create_engine(driver_url(url))
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cursor.execute("PRAGMA busy_timeout = 5000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: object) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # type: ignore[attr-defined]

    return engine


def commit_floor(url: str, samples: int) -> float:
    """Median seconds of one committed single-row UPDATE on the database (psycopg2 or sqlite3 through
    SQLAlchemy Core, a separate table), the cost below which no committed call can go."""
    engine = engine_for(url)
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


# --- the server ------------------------------------------------------------------------------


def service_command() -> list[str]:
    """`pbt-service` of this interpreter's environment (its console script, else `-m pbt_service.cli`)."""
    script = Path(sys.executable).parent / "pbt-service"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pbt_service.cli"]


def _service_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}


@dataclass
class Server:
    address: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise BenchmarkError(f"the service exited with {self.process.returncode}; its log ends:\n{tail}")


@contextmanager
def server(
    url: str,
    log: Path,
    max_workers: int | None = None,
    *,
    program: Sequence[str] | None = None,
    extra: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """`pbt-service serve` as a subprocess (`program`, by default this environment's
    `pbt-service`, with `extra` flags and `env` added to the environment); yields once it accepts
    connections."""
    port = free_port()
    workers = ["--max-workers", str(max_workers)] if max_workers is not None else []
    command = [*(program or service_command()), "serve", "--database-url", url, "--host", "127.0.0.1",
               "--port", str(port), *workers, "--log-level", "WARNING", "--grace-seconds", "1", *extra]  # fmt: skip
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**_service_env(), **(env or {})})
    running = Server(f"127.0.0.1:{port}", process, log)
    try:
        with grpc.insecure_channel(running.address) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=120)
            except grpc.FutureTimeoutError:
                running.check_alive()
                raise BenchmarkError(f"the service at {running.address} did not accept connections in 120 s") from None
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


# --- CPU accounting --------------------------------------------------------------------------


def _stat(pid: int) -> tuple[float, float, int] | None:
    """(own CPU seconds, CPU seconds of its reaped children, parent pid) of a process; None once gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS, (int(fields[13]) + int(fields[14])) / TICKS, int(fields[1])


def tree_cpu(root: int | None) -> float:
    """CPU seconds of a process, of its live descendants and of the children it reaped. The
    difference of two readings is the tree's CPU in between, even when processes come and go."""
    if root is None:
        return 0.0
    stats = {pid: s for pid in _all_pids() if (s := _stat(pid)) is not None}
    if root not in stats:
        return 0.0
    children: dict[int, list[int]] = {}
    for pid, (_, _, parent) in stats.items():
        children.setdefault(parent, []).append(pid)
    total, todo = stats[root][1], [root]
    while todo:
        pid = todo.pop()
        total += stats[pid][0] + (stats[pid][1] if pid != root else 0.0)
        todo += children.get(pid, [])
    return total


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


@dataclass(frozen=True)
class Cpu:
    server: float  # CPU seconds of the service process tree
    database: float  # CPU seconds of the PostgreSQL server (postmaster and its children)
    busy: float  # share of the whole machine's CPU time that was busy


@dataclass
class CpuMeter:
    """CPU of the service process (and any children), of PostgreSQL and of the machine over a window."""

    server_pid: int | None
    database_pid: int | None
    start: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def read(self) -> tuple[float, float, float, float]:
        busy, total = _machine_busy()
        return tree_cpu(self.server_pid), tree_cpu(self.database_pid), busy, total

    def begin(self) -> None:
        self.start = self.read()

    def end(self) -> Cpu:
        server, database, busy, total = self.read()
        window = (total - self.start[3]) or float("nan")
        return Cpu(server - self.start[0], database - self.start[1], (busy - self.start[2]) / window)


# --- SQL statements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementUse:
    """What one kind of call cost the database, per call: statements other than transaction
    control, transaction control (BEGIN/COMMIT/ROLLBACK/SAVEPOINT), the statements' execution
    time, and the statements themselves (normalized text, calls per call)."""

    calls: int
    statements: float
    transaction_control: float
    exec_ms: float
    by_text: tuple[tuple[str, float], ...]


class StatementCounter:
    """Counts the statements PostgreSQL executed for one database, from pg_stat_statements (the
    server must preload it). Readings are taken from the admin database, so they do not count."""

    def __init__(self, postgres: Postgres, database: str) -> None:
        self.engine = admin_engine(postgres)
        self.database = database
        with self.engine.connect() as connection:
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
            connection.execute(text("SELECT pg_stat_statements_reset()"))

    def snapshot(self) -> dict[str, tuple[int, float]]:
        query = text(
            "SELECT s.query, sum(s.calls), sum(s.total_exec_time) FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = :db GROUP BY s.query"
        )
        with self.engine.connect() as connection:
            return {q: (int(c), float(t)) for q, c, t in connection.execute(query, {"db": self.database})}

    @staticmethod
    def use(deltas: list[dict[str, tuple[int, float]]]) -> StatementUse:
        """Per-call figures from the snapshot differences of `len(deltas)` calls."""
        calls = max(len(deltas), 1)
        by_text: dict[str, int] = {}
        exec_ms = 0.0
        for delta in deltas:
            for query, (count, ms) in delta.items():
                by_text[query] = by_text.get(query, 0) + count
                exec_ms += ms
        control = sum(n for q, n in by_text.items() if q.strip().upper().startswith(TRANSACTION_CONTROL))
        statements = sum(by_text.values()) - control
        ordered = sorted(((q, n / calls) for q, n in by_text.items() if n), key=lambda item: -item[1])
        return StatementUse(len(deltas), statements / calls, control / calls, exec_ms / calls, tuple(ordered))

    @staticmethod
    def diff(before: dict[str, tuple[int, float]], after: dict[str, tuple[int, float]]) -> dict[str, tuple[int, float]]:
        out = {}
        for query, (count, ms) in after.items():
            was = before.get(query, (0, 0.0))
            if count > was[0]:
                out[query] = (count - was[0], ms - was[1])
        return out

    def close(self) -> None:
        self.engine.dispose()
