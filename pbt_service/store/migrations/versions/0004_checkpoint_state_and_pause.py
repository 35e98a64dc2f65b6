"""measurements.checkpoint_state (the collector's decisions) and studies.paused.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

Both columns are added with plain ALTER TABLE: a batch copy of `studies` or `measurements` on
SQLite would cascade-delete their trials or metrics. The check constraint rides on the column
definition, which both SQLite and PostgreSQL accept in ADD COLUMN. Written against plain
SQLAlchemy: never import pbt_service.store.models here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE measurements ADD COLUMN checkpoint_state VARCHAR(16) DEFAULT 'present' NOT NULL "
        "CONSTRAINT ck_measurements_checkpoint_state "
        "CHECK (checkpoint_state IN ('present', 'collecting', 'deleted'))"
    )
    op.add_column("studies", sa.Column("paused", sa.Boolean(), server_default=sa.text("false"), nullable=False))


def downgrade() -> None:
    op.drop_column("studies", "paused")
    op.drop_column("measurements", "checkpoint_state")
