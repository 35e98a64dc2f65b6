"""Schema versioning with the Alembic migrations shipped in `pbt_service/store/migrations`.

A service replica never migrates a database that already holds data: `ensure_schema` creates the
schema of an empty database and refuses an older one with `SchemaOutdatedError`, which names the
command an operator runs (`pbt-service migrate --database-url URL`, i.e. `upgrade(url)`).
Concurrent starts are serialized by a transaction-scoped advisory lock on PostgreSQL and by
`BEGIN IMMEDIATE` on SQLite; the check and the migration run inside that one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import InterfaceError, OperationalError

from pbt_service.store.engine import ErrorKind, StorageSettings, classify_error, make_engine, shown_url
from pbt_service.store.errors import DatabaseConfigError, SchemaOutdatedError, UnavailableError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SCHEMA_LOCK_KEY = 0x70627473636865  # pg_advisory_xact_lock key: "pbtsche"
MIGRATION_SETTINGS = StorageSettings(statement_timeout_s=0, lock_timeout_s=0)
"""A migration may rewrite big tables and wait for replicas' transactions: no timeouts (0)."""
TABLES = ("studies", "trials", "trial_params", "measurements", "measurement_metrics")


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic.ini-less Config pointing at the packaged migrations (and `connection`, if given)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine | Connection) -> str | None:
    """The database's revision; None for a database never migrated."""
    if isinstance(engine, Connection):
        return MigrationContext.configure(engine).get_current_revision()
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str | Engine) -> None:
    """Creates or migrates the schema to the head revision (what `pbt-service migrate` runs).

    Safe against concurrent callers (see the module docstring). Raises SchemaOutdatedError for a
    database holding foreign tables or a revision newer than this code, DatabaseConfigError when the
    database refuses for good (a wrong password, an unknown database), UnavailableError when it
    cannot be reached. Example: `upgrade("postgresql://pbt@db-host/pbt")`.
    """
    _with_engine(url, lambda engine: _ensure(engine, create=True, migrate=True), MIGRATION_SETTINGS)


def ensure_schema(engine_or_url: Engine | str, *, auto_create: bool = True) -> None:
    """Makes sure the database is at the head revision, without migrating data.

    An empty database is migrated to head when `auto_create` is true. Raises SchemaOutdatedError
    (naming `pbt-service migrate --database-url URL`) for an older revision or an empty database
    with `auto_create=False`, and for tables without a revision or a revision this code does not
    know; UnavailableError when the database cannot be reached.
    """
    _with_engine(engine_or_url, lambda engine: _ensure(engine, create=auto_create, migrate=False))


def _with_engine(
    url: str | Engine, work: Callable[[Engine], None], settings: StorageSettings | None = None
) -> None:
    engine = url if isinstance(url, Engine) else make_engine(url, settings)
    try:
        work(engine)
    except (OperationalError, InterfaceError) as e:
        if classify_error(e) is ErrorKind.PERMANENT:
            raise DatabaseConfigError(f"database {_shown(engine)} refused: {e.orig or e}") from e
        raise UnavailableError(f"cannot reach database {_shown(engine)}: {e.orig or e}") from e
    finally:
        if not isinstance(url, Engine):
            engine.dispose()


def _ensure(engine: Engine, *, create: bool, migrate: bool) -> None:
    url = _shown(engine)
    command_line = f"pbt-service migrate --database-url {url}"
    head = head_revision()
    with engine.begin() as connection:
        _lock(connection)
        current = current_revision(connection)
        if current == head:
            return
        if current is None:
            existing = set(inspect(connection).get_table_names()) & set(TABLES)
            if existing:
                raise SchemaOutdatedError(
                    f"database {url} has tables {sorted(existing)} but no pbt-service schema revision; "
                    "use an empty database"
                )
            if not create:
                raise SchemaOutdatedError(f"database {url} has no schema; run `{command_line}`")
        elif current not in {
            script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
        }:
            raise SchemaOutdatedError(
                f"database {url} is at schema revision {current}, which this pbt-service version does "
                f"not know (its newest is {head}); upgrade pbt-service"
            )
        elif not migrate:
            raise SchemaOutdatedError(
                f"database {url} is at schema revision {current}, older than {head}; run `{command_line}`"
            )
        command.upgrade(alembic_config(connection), "head")


def _shown(engine: Engine) -> str:
    return shown_url(engine.url)


def _lock(connection: Connection) -> None:
    """Serializes schema work between processes until the transaction ends."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
