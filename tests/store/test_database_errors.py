"""Database errors are classified precisely: permanent ones are reported at once, never retried
as UNAVAILABLE; passwords never appear in what is printed."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

from pbt_service import cli
from pbt_service.store import schema
from pbt_service.store.engine import ErrorKind, StorageSettings, classify_error, make_engine, shown_url
from pbt_service.store.errors import DatabaseConfigError, UnavailableError
from pbt_service.store.sql_storage import SqlStorage

SECRET = "s3cr3t-pw"


class _PgError(Exception):
    """Stands in for a psycopg2 error carrying a SQLSTATE."""

    def __init__(self, message: str, pgcode: str | None) -> None:
        super().__init__(message)
        self.pgcode = pgcode


def _operational(original: BaseException) -> OperationalError:
    return OperationalError("SELECT 1", {}, original)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_operational(_PgError('FATAL:  password authentication failed for user "pbt"', None)), ErrorKind.PERMANENT),
        (_operational(_PgError('FATAL:  database "nope" does not exist', None)), ErrorKind.PERMANENT),
        (_operational(_PgError('FATAL:  role "nobody" does not exist', None)), ErrorKind.PERMANENT),
        (_operational(_PgError("FATAL:  no pg_hba.conf entry for host", None)), ErrorKind.PERMANENT),
        (_operational(_PgError("connection to server failed: Connection refused", None)), ErrorKind.TRANSIENT),
        (_operational(_PgError("server closed the connection unexpectedly", None)), ErrorKind.TRANSIENT),
        (_operational(_PgError("timeout expired", None)), ErrorKind.TRANSIENT),
        (_operational(_PgError("could not serialize access", "40001")), ErrorKind.TRANSIENT),
        (_operational(_PgError("deadlock detected", "40P01")), ErrorKind.TRANSIENT),
        (_operational(_PgError("canceling statement due to lock timeout", "55P03")), ErrorKind.TRANSIENT),
        (_operational(_PgError("canceling statement due to statement timeout", "57014")), ErrorKind.TRANSIENT),
        (_operational(_PgError("the database system is starting up", "57P03")), ErrorKind.TRANSIENT),
        (_operational(_PgError("sorry, too many clients already", "53300")), ErrorKind.TRANSIENT),
        (_operational(_PgError("program limit exceeded", "54000")), ErrorKind.PERMANENT),
        (ProgrammingError("SELECT", {}, _PgError('relation "studies" does not exist', "42P01")), ErrorKind.PERMANENT),
        (ProgrammingError("SELECT", {}, _PgError("syntax error", "42601")), ErrorKind.OTHER),
        (_operational(sqlite3.OperationalError("database is locked")), ErrorKind.TRANSIENT),
        (_operational(sqlite3.OperationalError("no such table: studies")), ErrorKind.PERMANENT),
        (_operational(sqlite3.OperationalError("unable to open database file")), ErrorKind.PERMANENT),
    ],
    ids=lambda value: str(getattr(value, "orig", value))[:40],
)
def test_classification(error: SQLAlchemyError, kind: ErrorKind) -> None:
    assert classify_error(error) is kind


def test_missing_table_fails_at_once(storage_url: str) -> None:
    """A database without the schema (nobody ran `pbt-service migrate`): no retries, no UNAVAILABLE."""
    storage = SqlStorage(make_engine(storage_url), StorageSettings(retry_base_delay_s=1.0))
    sleeps: list[float] = []
    storage._sleep = sleeps.append
    try:
        with pytest.raises(DatabaseConfigError, match="refused") as caught:
            storage.run(lambda tx: tx.get_study("x"))
        assert sleeps == []
        assert not isinstance(caught.value, UnavailableError)
    finally:
        storage.close()


@pytest.mark.postgres
def test_unknown_database_fails_fast_with_a_clear_message(postgres_url: str) -> None:
    url = make_url(postgres_url).set(database="no_such_database", password=SECRET)
    text = url.render_as_string(hide_password=False)
    started = time.monotonic()
    with pytest.raises(DatabaseConfigError, match='database "no_such_database" does not exist') as caught:
        SqlStorage.from_url(text)
    with pytest.raises(DatabaseConfigError, match="no_such_database"):
        schema.upgrade(text)
    storage = SqlStorage.from_url(text, check_schema=False)
    try:
        with pytest.raises(DatabaseConfigError, match="no_such_database"):
            storage.run(lambda tx: tx.list_studies())
    finally:
        storage.close()
    assert time.monotonic() - started < 2
    assert SECRET not in str(caught.value) and "***" in str(caught.value)


def test_shown_url_hides_the_password() -> None:
    assert shown_url(f"postgresql://pbt:{SECRET}@db/pbt") == "postgresql://pbt:***@db/pbt"
    assert shown_url("sqlite:///pbt.db") == "sqlite:///pbt.db"
    assert SECRET not in shown_url(f"not a url {SECRET}")


def test_cli_never_prints_the_password(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    refused = f"postgresql://pbt:{SECRET}@127.0.0.1:1/pbt"
    assert cli.main(["migrate", "--database-url", refused]) == 2
    ok = f"sqlite:///{tmp_path / 'pbt.db'}"
    assert cli.main(["migrate", "--database-url", ok]) == 0
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert "pbt:***@127.0.0.1:1/pbt" in out.err and "is up to date" in out.out
