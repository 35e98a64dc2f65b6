"""Initial schema: studies, trials, trial_params, measurements, measurement_metrics.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written against plain SQLAlchemy: never import pbt_service.store.models here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("config_json", sa.Text(), nullable=False),
        sa.Column("population_size", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("trial_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('active', 'done')", name="ck_studies_state"),
        sa.PrimaryKeyConstraint("id", name="pk_studies"),
        sa.UniqueConstraint("name", name="uq_studies_name"),
    )
    op.create_table(
        "trials",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("worker_id", sa.String(256), server_default=sa.text("''"), nullable=False),
        sa.Column("warm_start_checkpoint_path", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("parent_trial_id", sa.Integer(), nullable=True),
        sa.Column("initiator_parent_trial_id", sa.Integer(), nullable=True),
        sa.Column("initiated_trial_id", sa.Integer(), nullable=True),
        sa.Column("stop_requested", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("status_message", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("final_measurement_id", sa.Integer(), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('active', 'completed', 'stopped', 'failed')", name="ck_trials_status"),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name="fk_trials_study_id_studies", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["parent_trial_id"], ["trials.id"], name="fk_trials_parent_trial_id_trials"),
        sa.ForeignKeyConstraint(
            ["initiator_parent_trial_id"], ["trials.id"], name="fk_trials_initiator_parent_trial_id_trials"
        ),
        sa.ForeignKeyConstraint(
            ["initiated_trial_id"], ["trials.id"], name="fk_trials_initiated_trial_id_trials"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_trials"),
        sa.UniqueConstraint("study_id", "number", name="uq_trials_study_id_number"),
    )
    op.create_index("ix_trials_study_id_status_number", "trials", ["study_id", "status", "number"])
    op.create_index("ix_trials_study_id_generation_status", "trials", ["study_id", "generation", "status"])
    op.create_index("ix_trials_study_id_worker_id_status", "trials", ["study_id", "worker_id", "status"])
    op.create_index(
        "ix_trials_initiator_lookup",
        "trials",
        ["study_id", "status", "initiated_trial_id", "generation", "number"],
    )
    op.create_table(
        "trial_params",
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("float_value", sa.Double(), nullable=True),
        sa.Column("int_value", sa.BigInteger(), nullable=True),
        sa.Column("string_value", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('float', 'int', 'str')", name="ck_trial_params_kind"),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trials.id"], name="fk_trial_params_trial_id_trials", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("trial_id", "name", name="pk_trial_params"),
    )
    op.create_table(
        "measurements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("checkpoint_path", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("elapsed_seconds", sa.Double(), server_default=sa.text("0"), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trials.id"], name="fk_measurements_trial_id_trials", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_measurements"),
        sa.UniqueConstraint("trial_id", "step", name="uq_measurements_trial_id_step"),
    )
    op.create_table(
        "measurement_metrics",
        sa.Column("measurement_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["measurement_id"],
            ["measurements.id"],
            name="fk_measurement_metrics_measurement_id_measurements",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("measurement_id", "name", name="pk_measurement_metrics"),
    )


def downgrade() -> None:
    op.drop_table("measurement_metrics")
    op.drop_table("measurements")
    op.drop_table("trial_params")
    op.drop_index("ix_trials_initiator_lookup", table_name="trials")
    op.drop_index("ix_trials_study_id_worker_id_status", table_name="trials")
    op.drop_index("ix_trials_study_id_generation_status", table_name="trials")
    op.drop_index("ix_trials_study_id_status_number", table_name="trials")
    op.drop_table("trials")
    op.drop_table("studies")
