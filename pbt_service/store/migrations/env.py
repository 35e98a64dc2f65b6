"""Alembic environment for the tuner database.

Run through `pbt_service.store.schema` (no alembic.ini): the caller passes an open connection in
`config.attributes["connection"]`, already inside the transaction that holds the schema lock.
Without one, `sqlalchemy.url` from the config is used. The live models are never imported; a
developer running autogenerate passes them in `config.attributes["target_metadata"]`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

config = context.config
target_metadata = config.attributes.get("target_metadata")


def _run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run() -> None:
    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_with(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("pass a connection in config.attributes or set sqlalchemy.url")
    engine = create_engine(url)
    try:
        with engine.connect() as new_connection:
            _run_with(new_connection)
            new_connection.commit()
    finally:
        engine.dispose()


_run()
