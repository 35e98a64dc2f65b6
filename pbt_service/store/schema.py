"""Schema versioning with the Alembic migrations shipped in `pbt_service/store/migrations`.

A service replica never migrates a database that already holds data: `ensure_schema` creates the
schema of an empty database and refuses an older one with `SchemaOutdatedError`, which names the
command an operator runs (`pbt-service migrate --database-url URL`, i.e. `upgrade(url)`).
Concurrent starts are serialized by a transaction-scoped advisory lock on PostgreSQL and by
`BEGIN IMMEDIATE` on SQLite; the check and the migration run inside that one transaction.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from pbt_service.store.engine import StorageSettings, make_engine
from pbt_service.store.errors import SchemaOutdatedError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SCHEMA_LOCK_KEY = 0x70627473636865  # pg_advisory_xact_lock key: "pbtsche"
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
    """Migrates the database to the head revision (what `pbt-service migrate` runs).

    Safe against concurrent callers (see the module docstring). Example: `upgrade("sqlite:///pbt.db")`.
    """
    engine = url if isinstance(url, Engine) else make_engine(url, StorageSettings())
    try:
        with engine.begin() as connection:
            _lock(connection)
            if current_revision(connection) != head_revision():
                command.upgrade(alembic_config(connection), "head")
    finally:
        if not isinstance(url, Engine):
            engine.dispose()


def ensure_schema(engine_or_url: Engine | str, *, auto_create: bool = True) -> None:
    """Makes sure the database is at the head revision.

    An empty database is migrated to head when `auto_create` is true. Raises SchemaOutdatedError
    (naming `pbt-service migrate --database-url URL`) for an older revision, an empty database
    with `auto_create=False`, tables without a revision, or a revision this code does not know.
    """
    if isinstance(engine_or_url, str):
        engine = make_engine(engine_or_url, StorageSettings())
        try:
            _ensure(engine, auto_create)
        finally:
            engine.dispose()
    else:
        _ensure(engine_or_url, auto_create)


def _ensure(engine: Engine, auto_create: bool) -> None:
    url = engine.url.render_as_string(hide_password=True)
    migrate = f"pbt-service migrate --database-url {url}"
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
                    f"database {url} has tables {sorted(existing)} but no schema revision; "
                    f"it was not created by pbt-service (run `{migrate}` only on a database it made)"
                )
            if not auto_create:
                raise SchemaOutdatedError(f"database {url} has no schema; run `{migrate}`")
            command.upgrade(alembic_config(connection), "head")
            return
        known = {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
        if current not in known:
            raise SchemaOutdatedError(
                f"database {url} is at schema revision {current}, which this pbt-service version does "
                f"not know (its newest is {head}); upgrade pbt-service"
            )
        raise SchemaOutdatedError(
            f"database {url} is at schema revision {current}, older than {head}; run `{migrate}`"
        )


def _lock(connection: Connection) -> None:
    """Serializes schema work between processes until the transaction ends."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
