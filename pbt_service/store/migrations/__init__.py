"""Alembic migrations of the tuner database, shipped with the package (see pbt_service.store.schema)."""
