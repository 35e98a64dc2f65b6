"""studies.stopped_count: the budget check reads a counter instead of counting the history.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01

Written against plain SQLAlchemy: never import pbt_service.store.models here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column(
        "studies", sa.Column("stopped_count", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.execute(
        "UPDATE studies SET stopped_count = "
        "(SELECT count(*) FROM trials WHERE trials.study_id = studies.id AND trials.status = 'stopped')"
    )


def downgrade() -> None:
    # A plain ALTER TABLE (SQLite >= 3.35): a batch copy of `studies` would cascade-delete trials.
    op.drop_column("studies", "stopped_count")
