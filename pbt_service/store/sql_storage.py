"""`Storage` on SQLAlchemy: SQLite (file or in-memory) and PostgreSQL.

Example:
    storage = SqlStorage.from_url("sqlite:///pbt.db")  # or "postgresql://pbt@db-host/pbt"
    study = storage.run(lambda tx: tx.get_study("mnist"))
    storage.close()
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import NoReturn, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from pbt_service.store.base import Storage, Transaction
from pbt_service.store.engine import (
    ErrorKind,
    StorageSettings,
    classify_error,
    is_sqlite_memory,
    make_engine,
    shown_url,
)
from pbt_service.store.errors import DatabaseConfigError, UnavailableError
from pbt_service.store.schema import ensure_schema
from pbt_service.store.sql_transaction import SqlTransaction

__all__ = ["RetryListener", "SqlStorage", "StorageSettings", "TransientDatabaseError"]

T = TypeVar("T")


class TransientDatabaseError(UnavailableError):
    """A failure worth retrying the whole transaction for: a lost or refused connection, a
    deadlock, a serialization failure, a locked SQLite database, an exhausted pool."""


RetryListener = Callable[[TransientDatabaseError], None]
"""Told of each transaction `SqlStorage.run` is about to redo (metrics: `pbt_service.observability`)."""


class SqlStorage(Storage):
    """Storage over one SQLAlchemy engine; thread-safe, and safe across processes sharing the DB.

    Transactions that fail with a TransientDatabaseError are redone by `run` with jittered
    exponential backoff, bounded by `StorageSettings.max_attempts` and `retry_deadline_s`.
    """

    def __init__(self, engine: Engine, settings: StorageSettings | None = None) -> None:
        self._engine = engine
        self._settings = settings or StorageSettings()
        # The in-memory database is one shared connection: let one transaction use it at a time.
        self._serial: AbstractContextManager[object] = (
            threading.Lock() if is_sqlite_memory(engine.url) else contextlib.nullcontext()
        )
        self._random = random.Random()
        self._sleep: Callable[[float], None] = time.sleep
        self._retry_listeners: list[RetryListener] = []

    @classmethod
    def from_url(
        cls,
        url: str,
        settings: StorageSettings | None = None,
        *,
        check_schema: bool = True,
        auto_create: bool = True,
    ) -> SqlStorage:
        """Connects and checks the schema (see `schema.ensure_schema`).

        Raises ValueError for an unsupported URL, SchemaOutdatedError for an old schema,
        DatabaseConfigError at once when the database refuses for good (a wrong password, an
        unknown database), and UnavailableError when it cannot be reached.
        Example: `SqlStorage.from_url("sqlite:///pbt.db")`, `SqlStorage.from_url("sqlite://")`.
        """
        settings = settings or StorageSettings()
        engine = make_engine(url, settings)
        try:
            if check_schema:
                ensure_schema(engine, auto_create=auto_create)
        except SQLAlchemyError as e:
            engine.dispose()
            if classify_error(e) is ErrorKind.PERMANENT:
                raise DatabaseConfigError(_refused(engine.url, e)) from e
            raise UnavailableError(f"cannot use database {shown_url(engine.url)}: {_brief(e)}") from e
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, settings)

    def add_retry_listener(self, listener: RetryListener) -> Callable[[], None]:
        """Calls `listener` before each retry, on the retrying thread (keep it cheap); a listener
        per server, so servers sharing a process do not count each other's retries. Returns the
        function that removes it."""
        self._retry_listeners.append(listener)
        return lambda: self._retry_listeners.remove(listener)

    @property
    def engine(self) -> Engine:
        return self._engine

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Commits on success and rolls back on any exception. Database errors that are transient
        become TransientDatabaseError (an UnavailableError), permanent ones (a wrong password, a
        missing table) DatabaseConfigError; other SQLAlchemy errors (bugs such as a violated
        constraint) propagate unchanged."""
        with self._serial:
            try:
                connection = self._engine.connect()
            except SQLAlchemyError as e:
                _raise_classified(e, self._engine.url)
            try:
                connection.begin()
                yield SqlTransaction(connection)
                connection.commit()
            except SQLAlchemyError as e:
                _rollback(connection)
                _raise_classified(e, self._engine.url)
            except BaseException:
                _rollback(connection)
                raise
            finally:
                connection.close()

    def run(self, work: Callable[[Transaction], T], *, timeout_s: float | None = None) -> T:
        """Runs `work` in a transaction, redoing it on transient errors; raises UnavailableError
        when they persist or `timeout_s` has passed, and DatabaseConfigError at once (no retry).
        `work` may run more than once, so it must not have side effects outside the transaction."""
        budget = self._settings.retry_deadline_s
        deadline = time.monotonic() + (budget if timeout_s is None else min(timeout_s, budget))
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.transaction() as tx:
                    return work(tx)
            except TransientDatabaseError as e:
                pause = self._backoff(attempt)
                if attempt >= self._settings.max_attempts or time.monotonic() + pause >= deadline:
                    raise UnavailableError(
                        f"database unavailable after {attempt} attempt(s): {e}"
                    ) from e.__cause__
                for listener in tuple(self._retry_listeners):
                    listener(e)
                self._sleep(pause)

    def close(self) -> None:
        self._engine.dispose()

    def _backoff(self, attempt: int) -> float:
        base = min(self._settings.retry_max_delay_s, self._settings.retry_base_delay_s * 2.0 ** (attempt - 1))
        return base * (0.5 + self._random.random())


def _raise_classified(error: SQLAlchemyError, url: URL) -> NoReturn:
    """Raises a transient error (see `engine.classify_error`) as TransientDatabaseError, a
    permanent one as DatabaseConfigError, and any other (a bug such as a violated constraint) as
    it is."""
    kind = classify_error(error)
    if kind is ErrorKind.TRANSIENT:
        raise TransientDatabaseError(f"database error: {_brief(error)}") from error
    if kind is ErrorKind.PERMANENT:
        raise DatabaseConfigError(_refused(url, error)) from error
    raise error


def _refused(url: URL, error: SQLAlchemyError) -> str:
    return (
        f"database {shown_url(url)} refused: {_brief(error)} (not retried: check the URL, the "
        "credentials and the schema, `pbt-service migrate --database-url URL`)"
    )


def _rollback(connection: Connection) -> None:
    with contextlib.suppress(SQLAlchemyError):  # the connection may be gone; close() cleans up
        connection.rollback()


def _brief(error: SQLAlchemyError) -> str:
    """The driver's message without SQLAlchemy's statement dump."""
    original = getattr(error, "orig", None)
    return " ".join(str(original if original is not None else error).split())[:500]
