"""The tuner database: one Storage interface, one SQLAlchemy implementation for SQLite and PostgreSQL."""
