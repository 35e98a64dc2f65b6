"""trials.steps (the steps the service asks a trial for) and trials.lineage_json (the lineage
summary selection reads: core.types.LineageRecord).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

Plain ADD COLUMN with server defaults, on both backends (a batch copy of `trials` on SQLite would
cascade-delete params and measurements). Rows written before read as "the worker decides" and an
empty record, i.e. what those trials were. Written against plain SQLAlchemy: never import
pbt_service.store.models here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("trials", sa.Column("steps", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    op.add_column("trials", sa.Column("lineage_json", sa.Text(), server_default=sa.text("''"), nullable=False))


def downgrade() -> None:
    op.drop_column("trials", "lineage_json")
    op.drop_column("trials", "steps")
