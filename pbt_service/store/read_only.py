"""Reading a study database directly, without a service, and without any way to change it.

`pbt-results --database-url URL` and `connect("sqlite:///runs/pbt.db")` use this to look at a
finished study on a laptop, or at a replica's PostgreSQL from an analyst's notebook. Read-only is
enforced by the database, not by care: PostgreSQL sessions start with
`default_transaction_read_only`, SQLite connections set `PRAGMA query_only`, every transaction is
rolled back, and a missing SQLite file is an error rather than a new empty database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from pbt_service.core.types import Study, Trial, TrialStatus
from pbt_service.store.base import Transaction
from pbt_service.store.engine import ErrorKind, classify_error, is_sqlite_memory, normalize_url, shown_url
from pbt_service.store.errors import DatabaseConfigError, SchemaOutdatedError, UnavailableError
from pbt_service.store.schema import current_revision, head_revision
from pbt_service.store.sql_transaction import SqlTransaction

T = TypeVar("T")
PAGE = 1000


class ReadOnlyDatabase:
    """The read queries of a results source over a database URL. Raises ValueError for an
    unsupported URL or a missing SQLite file, SchemaOutdatedError for a schema this code cannot
    read, DatabaseConfigError/UnavailableError when the database refuses or cannot be reached."""

    def __init__(self, url: str, *, connect_timeout_s: int = 5) -> None:
        self._url = normalize_url(url)
        self._engine = _engine(self._url, connect_timeout_s)
        try:
            revision = self._read(current_revision)
        except BaseException:
            self._engine.dispose()
            raise
        if revision != head_revision():
            self._engine.dispose()
            shown = shown_url(self._url)
            raise SchemaOutdatedError(
                f"database {shown} holds no pbt-service study schema" if revision is None else
                f"database {shown} is at schema revision {revision}, this version reads {head_revision()}; "
                f"run `pbt-service migrate --database-url {shown}` or use the matching pbt-service version"
            )

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> ReadOnlyDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def list_studies(self) -> list[Study]:
        return self._read(lambda c: SqlTransaction(c).list_studies())

    def get_study(self, name: str) -> Study:
        """Raises NotFoundError."""
        return self._read(lambda c: SqlTransaction(c).get_study(name))

    def get_trial(self, trial_id: int) -> Trial:
        """Raises NotFoundError."""
        return self._read(lambda c: SqlTransaction(c).get_trial(trial_id))

    def list_trials(
        self,
        study: str,
        *,
        statuses: Sequence[TrialStatus] = (),
        generation: int | None = None,
        with_measurements: bool = True,
    ) -> list[Trial]:
        """Every matching trial by number, read in one transaction (one snapshot on PostgreSQL)."""

        def read(connection: Any) -> list[Trial]:
            tx: Transaction = SqlTransaction(connection)
            tx.get_study(study)
            trials: list[Trial] = []
            while True:
                page = tx.list_trials(study, statuses=statuses, generation=generation, limit=PAGE,
                                      after_number=trials[-1].number if trials else 0,
                                      with_measurements=with_measurements)
                trials += page
                if len(page) < PAGE:
                    return trials

        return self._read(read)

    def _read(self, work: Callable[[Any], T]) -> T:
        try:
            with self._engine.connect() as connection:
                if self._url.get_backend_name() == "postgresql":
                    connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                try:
                    return work(connection)
                finally:
                    connection.rollback()
        except SQLAlchemyError as error:
            brief = getattr(error, "orig", None) or error
            if classify_error(error) is ErrorKind.PERMANENT:
                raise DatabaseConfigError(f"database {shown_url(self._url)} refused: {brief}") from error
            raise UnavailableError(f"cannot read database {shown_url(self._url)}: {brief}") from error


def _engine(url: URL, connect_timeout_s: int) -> Engine:
    if url.get_backend_name() == "sqlite":
        if is_sqlite_memory(url):
            raise ValueError("an in-memory SQLite database has nothing to read: give sqlite:///PATH")
        path = Path(str(url.database)).expanduser()
        if not path.is_file():
            raise ValueError(f"no such database file: {path}")
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 5})

        @event.listens_for(engine, "connect")
        def _query_only(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA query_only = ON")
            finally:
                cursor.close()

        return engine
    given = url.query.get("options", "")
    options = " ".join([*([given] if isinstance(given, str) else list(given)), "-c default_transaction_read_only=on"])
    return create_engine(url, poolclass=NullPool,
                         connect_args={"connect_timeout": connect_timeout_s, "options": options.strip()})
