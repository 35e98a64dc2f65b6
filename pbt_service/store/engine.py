"""Engines configured for safe concurrent use of SQLite and PostgreSQL.

SQLite: WAL, a busy timeout, foreign keys on, and every transaction opened with `BEGIN IMMEDIATE`
so writers queue on the database lock instead of failing on lock upgrades. PostgreSQL: READ
COMMITTED and every wait bounded (connect, statement, lock, an idle transaction of a vanished
replica, unacknowledged TCP data), so a database that is down or stuck is reported within seconds
instead of hanging a request past its deadline. No pre-ping: a dead pooled connection fails its
transaction, which `SqlStorage.run` redoes on a fresh one, and every call saves a round trip.
"""

from __future__ import annotations

import enum
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import StaticPool

from pbt_service.store.errors import DatabaseConfigError

TRANSIENT_SQLSTATES = ("08", "40", "53", "57", "58", "55P03", "25P03")
"""PostgreSQL SQLSTATEs (classes or codes) worth retrying: connection exceptions, serialization
failures and deadlocks, insufficient resources (too many connections), operator intervention
(statement timeout, shutdown, starting up), system errors, lock timeout, idle-transaction timeout."""
MISSING_SCHEMA_SQLSTATES = ("42P01", "42703", "3F000")
"""Undefined table, undefined column, undefined schema: the schema is not this code's."""
PERMANENT_CONNECT_ERRORS = (
    "authentication failed", "no password supplied", "does not exist", "no pg_hba.conf entry",
    "permission denied", "invalid dsn", "invalid connection option", "invalid sslmode",
)
"""libpq refusals at connect time (they carry no SQLSTATE): wrong password or user, unknown
database or role, access not granted, a malformed URL."""
TRANSIENT_SQLITE_ERRORS = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_PROTOCOL", "SQLITE_IOERR")


class ErrorKind(enum.Enum):
    """What to do about a database error (see `classify_error`)."""

    TRANSIENT = "transient"  # redo the transaction
    PERMANENT = "permanent"  # the configuration is wrong: report at once, never retry
    OTHER = "other"  # a bug (a violated constraint, bad SQL): propagate unchanged


def classify_error(error: SQLAlchemyError) -> ErrorKind:
    """Classifies by the driver's error, not by SQLAlchemy's class alone: an `OperationalError`
    is a lost connection or a lock timeout (transient) as often as a wrong password or a missing
    table (permanent). Unknown `OperationalError`s stay transient, as retrying them is bounded."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return ErrorKind.TRANSIENT
    if isinstance(error, (InterfaceError, DisconnectionError, PoolTimeoutError)):
        return ErrorKind.TRANSIENT
    original = getattr(error, "orig", None)
    if isinstance(error, OperationalError):
        return ErrorKind.PERMANENT if _is_permanent(original) else ErrorKind.TRANSIENT
    if isinstance(error, ProgrammingError) and getattr(original, "pgcode", None) in MISSING_SCHEMA_SQLSTATES:
        return ErrorKind.PERMANENT
    return ErrorKind.OTHER


def _is_permanent(original: object) -> bool:
    if isinstance(original, sqlite3.Error):
        name = str(getattr(original, "sqlite_errorname", ""))
        return not name.startswith(TRANSIENT_SQLITE_ERRORS) and "locked" not in str(original)
    code = getattr(original, "pgcode", None)
    if code:
        return not str(code).startswith(TRANSIENT_SQLSTATES)
    message = str(original).lower()
    return any(pattern in message for pattern in PERMANENT_CONNECT_ERRORS)


def shown_url(url: str | URL) -> str:
    """The URL as it may be printed or logged: SQLAlchemy's rendering with the password hidden.
    Text that does not parse as a URL is not shown at all (it might hold a password)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - any parse failure: show nothing of it
        return "<unparsable database URL>"


@dataclass(frozen=True)
class StorageSettings:
    """Connection and retry settings of `SqlStorage`.

    `max_attempts`/`retry_deadline_s` bound `Storage.run`: it stops retrying after either.
    `statement_timeout_s`, `lock_timeout_s` and `idle_transaction_timeout_s` are PostgreSQL's
    `statement_timeout`, `lock_timeout` and `idle_in_transaction_session_timeout`; the first also
    bounds how long unacknowledged data may wait on a dead link (`tcp_user_timeout`).
    """

    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout_s: float = 5.0
    connect_timeout_s: int = 2
    statement_timeout_s: float = 5.0
    lock_timeout_s: float = 5.0
    idle_transaction_timeout_s: float = 30.0
    sqlite_busy_timeout_s: float = 5.0
    max_attempts: int = 5
    retry_base_delay_s: float = 0.02
    retry_max_delay_s: float = 0.5
    retry_deadline_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.connect_timeout_s < 1:
            raise ValueError(f"connect_timeout_s must be at least 1, got {self.connect_timeout_s}")


def normalize_url(url: str | URL) -> URL:
    """Parses a database URL; `postgres://` and `postgresql://` mean psycopg2.

    Raises ValueError for an unsupported backend.
    """
    if isinstance(url, str) and url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    if parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+pysqlite")
    if parsed.drivername not in ("postgresql+psycopg2", "sqlite+pysqlite"):
        raise ValueError(
            f"unsupported database URL {shown_url(parsed)!r}: "
            "use sqlite:///PATH or postgresql://USER@HOST/DB"
        )
    return parsed


def is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(url: str | URL, settings: StorageSettings | None = None) -> Engine:
    """Creates an engine for a SQLite or PostgreSQL URL. Raises ValueError for other backends.

    Example: `make_engine("sqlite:///pbt.db")`, `make_engine("postgresql://pbt@db/pbt")`.
    """
    settings = settings or StorageSettings()
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, settings)
    return create_engine(
        parsed,
        isolation_level="READ COMMITTED",
        pool_recycle=300,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_s,
        connect_args=_postgres_connect_args(parsed, settings),
    )


def _postgres_connect_args(url: URL, settings: StorageSettings) -> dict[str, Any]:
    """libpq parameters; server settings are appended to any `options` the URL carries."""
    timeouts = {
        "statement_timeout": settings.statement_timeout_s,
        "lock_timeout": settings.lock_timeout_s,
        "idle_in_transaction_session_timeout": settings.idle_transaction_timeout_s,
    }
    given = url.query.get("options", "")
    options = [given] if isinstance(given, str) else list(given)
    options += [f"-c {name}={int(seconds * 1000)}" for name, seconds in timeouts.items()]
    return {
        "connect_timeout": settings.connect_timeout_s,
        "options": " ".join(o for o in options if o),
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": int(settings.statement_timeout_s * 1000),
    }


def _sqlite_engine(url: URL, settings: StorageSettings) -> Engine:
    """Raises DatabaseConfigError when the file's directory does not exist: SQLite would only say
    "unable to open database file", which reads like a permissions or network problem."""
    if not is_sqlite_memory(url):
        folder = Path(str(url.database)).expanduser().absolute().parent
        if not folder.is_dir():
            raise DatabaseConfigError(
                f"database {shown_url(url)}: the directory {folder} does not exist; create it first "
                f"(mkdir -p {folder})"
            )
    connect_args: dict[str, Any] = {"timeout": settings.sqlite_busy_timeout_s, "check_same_thread": False}
    if is_sqlite_memory(url):
        # One shared connection: every session sees the same in-memory database.
        engine = create_engine(url, connect_args=connect_args, poolclass=StaticPool)
    else:
        engine = create_engine(url, connect_args=connect_args)
    busy_ms = int(settings.sqlite_busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 module; the "begin" hook below emits it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA foreign_keys = ON")
            _switch_to_wal(cursor, settings.sqlite_busy_timeout_s)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _switch_to_wal(cursor: Any, patience_s: float) -> None:
    """WAL is a property of the file, set once; switching needs the file to itself and fails at
    once (no busy handler) while another process opens it, so a first start of several replicas
    retries for up to the busy timeout."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")  # a no-op once set; "memory" in memory
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
