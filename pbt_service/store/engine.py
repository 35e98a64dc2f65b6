"""Engines configured for safe concurrent use of SQLite and PostgreSQL.

SQLite: WAL, a busy timeout, foreign keys on, and every transaction opened with `BEGIN IMMEDIATE`
so writers queue on the database lock instead of failing on lock upgrades. PostgreSQL: READ
COMMITTED, a short connect timeout and `pool_pre_ping`, so a database that is down is reported
quickly instead of hanging a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool


@dataclass(frozen=True)
class StorageSettings:
    """Connection and retry settings of `SqlStorage`.

    `max_attempts`/`retry_deadline_s` bound `Storage.run`: it stops retrying after either.
    """

    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout_s: float = 10.0
    connect_timeout_s: int = 3
    sqlite_busy_timeout_s: float = 30.0
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
            f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: "
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
        pool_pre_ping=True,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_s,
        connect_args={"connect_timeout": settings.connect_timeout_s},
    )


def _sqlite_engine(url: URL, settings: StorageSettings) -> Engine:
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
            cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
