"""Migration scripts, oldest first; each imports only alembic and plain sqlalchemy."""
