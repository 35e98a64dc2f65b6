"""Shared fixtures: a throwaway PostgreSQL server and storages on every backend.

`postgres_url` (session) starts a private PostgreSQL server (or uses `$PBT_TEST_POSTGRES_URL`) and
never skips: without PostgreSQL the tests that need it fail, saying what to install.
`fresh_postgres_url` gives one test an empty database, `postgres_schema_url` (much faster) an empty
schema; `storage_url` is an empty database URL and `storage` a ready `SqlStorage` on
"sqlite-memory", "sqlite-file" and "postgresql" in turn. SQLAlchemy is imported lazily so that
tests of other packages do not pay for it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

pytest_plugins = ["tests.no_skips"]

if TYPE_CHECKING:
    from pbt_service.store.sql_storage import SqlStorage

POSTGRES_URL_ENV = "PBT_TEST_POSTGRES_URL"
TEST_DATABASE = "pbt_test"
INSTALL_HINT = (
    "PostgreSQL is needed for the storage tests: install it (`apt-get install -y postgresql`, as the "
    f"README's test command does) or point {POSTGRES_URL_ENV} at a server where the user may CREATE DATABASE"
)
STORAGE_BACKENDS = [
    pytest.param("sqlite-memory"),
    pytest.param("sqlite-file"),
    pytest.param("postgresql", marks=pytest.mark.postgres),
]


def _postgres_bin_dir() -> Path | None:
    """The directory holding initdb and pg_ctl: from PATH, else the newest /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _PostgresServer:
    """A private server in a temp directory: trust auth, 127.0.0.1 plus a unix socket, no fsync.

    PostgreSQL refuses to run as root, so as root every server command runs as user `postgres`.
    """

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="pbt-pg-", dir="/tmp" if Path("/tmp").is_dir() else None))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        if self.as_root:
            shutil.chown(self.root, user="postgres", group="postgres")

    def _run(self, *args: str, timeout: float = 120) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        last_error: Exception | None = None
        for _ in range(3):  # another process may grab the port between probing and binding it
            self.port = _free_port()
            options = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            try:
                self._run(
                    "pg_ctl",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                )
                return
            except RuntimeError as e:
                last_error = e
        log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        raise RuntimeError(f"{last_error}\nserver log:\n{log}")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"


def _execute_autocommit(url: str, *statements: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from pbt_service.store.engine import normalize_url

    engine = create_engine(
        normalize_url(url),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"connect_timeout": 5},
    )
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


class PausablePostgres(_PostgresServer):
    """The session fixture's throwaway server, plus a stop and a start that keep the data."""

    def pause(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=60)

    def resume(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
            "-c fsync=off -c max_connections=100"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")


@pytest.fixture
def pausable_postgres() -> Iterator[PausablePostgres]:
    """A PostgreSQL server of this test alone, which it may stop and start again (`pause`, `resume`);
    database `pbt_test`."""
    bin_dir = _postgres_bin_dir()
    assert bin_dir is not None, "PostgreSQL binaries not found"
    server = PausablePostgres(bin_dir)
    server.start()
    try:
        _execute_autocommit(server.url("postgres"), f"CREATE DATABASE {TEST_DATABASE}")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL database on a server private to this test session (or `$PBT_TEST_POSTGRES_URL`).

    Fails (never skips) when no server can be had.
    """
    configured = os.environ.get(POSTGRES_URL_ENV)
    if configured:
        try:
            _execute_autocommit(configured, "SELECT 1")
        except Exception as e:  # any failure here means: no PostgreSQL for this run
            pytest.fail(f"cannot connect to {POSTGRES_URL_ENV}: {e}\n{INSTALL_HINT}", pytrace=False)
        yield configured
        return
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        pytest.fail(
            f"initdb/pg_ctl not found on PATH or in /usr/lib/postgresql/*/bin. {INSTALL_HINT}", pytrace=False
        )
    started = time.monotonic()
    server: _PostgresServer | None = None
    try:
        server = _PostgresServer(bin_dir)  # as root this needs the `postgres` user the package creates
        server.start()
        _execute_autocommit(server.url("postgres"), f"CREATE DATABASE {TEST_DATABASE}")
    except Exception as e:  # any failure here means: no PostgreSQL for this run
        if server is not None:
            server.stop()
        pytest.fail(f"could not start PostgreSQL from {bin_dir}: {e}\n{INSTALL_HINT}", pytrace=False)
    print(f"PostgreSQL started on port {server.port} in {time.monotonic() - started:.1f}s")
    try:
        yield server.url(TEST_DATABASE)
    finally:
        server.stop()


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """An empty database of its own for one test on the session's server, dropped afterwards."""
    from sqlalchemy.engine import make_url

    name = f"test_{uuid.uuid4().hex[:16]}"
    _execute_autocommit(postgres_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _execute_autocommit(
            postgres_url,
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
            "AND pid <> pg_backend_pid()",
            f'DROP DATABASE IF EXISTS "{name}"',
        )


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A fresh, empty schema of its own in the session's database, with `search_path` set to it.

    For this code as good as a fresh database (nothing it does spans schemas) and about a hundred
    times faster to make than `CREATE DATABASE`, which copies a template.
    """
    from sqlalchemy.engine import make_url

    name = f"test_{uuid.uuid4().hex[:16]}"
    _execute_autocommit(postgres_url, f'CREATE SCHEMA "{name}"')
    try:
        url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={name}"})
        yield url.render_as_string(hide_password=False)
    finally:
        _execute_autocommit(postgres_url, f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(params=STORAGE_BACKENDS)
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL on each backend in turn."""
    if request.param == "sqlite-memory":
        return "sqlite://"
    if request.param == "sqlite-file":
        return f"sqlite:///{tmp_path / 'pbt.db'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def storage(storage_url: str) -> Iterator[SqlStorage]:
    """A ready SqlStorage (schema at head) on each backend in turn."""
    from pbt_service.store.sql_storage import SqlStorage

    store = SqlStorage.from_url(storage_url)
    try:
        yield store
    finally:
        store.close()

