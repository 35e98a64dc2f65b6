"""SQLAlchemy models: one queryable column per fact, nothing a query needs hidden in a blob.

Only the study's config is JSON (it is read whole, never filtered on). The migrations in
`migrations/versions/` are written against plain `sqlalchemy`, never against these classes; a test
checks that the migrated schema equals this metadata.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NAME_LENGTH = 256
STATUS_LENGTH = 16


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL keeps `timestamptz`; SQLite stores naive text, so values are converted to UTC before
    binding and tagged UTC again when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class NanAsNullDouble(TypeDecorator[float]):
    """A double where NULL means NaN: SQLite cannot store NaN, so both backends store it as NULL.

    +/-inf are stored natively.
    """

    impl = Double()
    cache_ok = True

    def process_bind_param(self, value: float | None, dialect: Dialect) -> float | None:
        if value is None or math.isnan(value):
            return None
        return float(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> float:
        return math.nan if value is None else float(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class StudyRow(Base):
    """A study. `trial_count` numbers its trials and `stopped_count` counts its STOPPED ones, both
    kept under the study's row lock, so the budget check never counts the history. `paused` is a
    user's flag beside the lifecycle `state`: a paused study that is resumed is as it was."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, unique=True)
    config_json: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[str] = mapped_column(String(STATUS_LENGTH), nullable=False)
    trial_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    stopped_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    paused: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    create_time: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)

    __table_args__ = (CheckConstraint("state IN ('active', 'done')", name="state"),)


class TrialRow(Base):
    """A trial. `final_measurement_id` is deliberately not a foreign key: it would make a
    trials <-> measurements cycle that SQLite cannot create or alter table by table."""

    __tablename__ = "trials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    generation: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(STATUS_LENGTH), nullable=False)
    worker_id: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, server_default=text("''"))
    warm_start_checkpoint_path: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("''"))
    parent_trial_id: Mapped[int | None] = mapped_column(ForeignKey("trials.id"), nullable=True)
    initiator_parent_trial_id: Mapped[int | None] = mapped_column(ForeignKey("trials.id"), nullable=True)
    initiated_trial_id: Mapped[int | None] = mapped_column(ForeignKey("trials.id"), nullable=True)
    stop_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    status_message: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("''"))
    final_measurement_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    create_time: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    heartbeat_time: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    steps: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    lineage_json: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("''"))

    __table_args__ = (
        UniqueConstraint("study_id", "number"),
        CheckConstraint("status IN ('active', 'completed', 'stopped', 'failed')", name="status"),
        # ACTIVE trials (of a worker) by number, and status-filtered listings.
        Index("ix_trials_study_id_status_number", "study_id", "status", "number"),
        # Counts per generation and opponents within a window of generations.
        Index("ix_trials_study_id_generation_status", "study_id", "generation", "status"),
        Index("ix_trials_study_id_worker_id_status", "study_id", "worker_id", "status"),
        # The initiator lookup (completed, initiated_trial_id IS NULL, oldest first) reads one
        # index entry however long the history; a plain index serves both backends' planners.
        Index(
            "ix_trials_initiator_lookup",
            "study_id",
            "status",
            "initiated_trial_id",
            "generation",
            "number",
        ),
    )


class TrialParamRow(Base):
    """One hyperparameter value; exactly one of the value columns is set, chosen by `kind`."""

    __tablename__ = "trial_params"

    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    kind: Mapped[str] = mapped_column(String(STATUS_LENGTH), nullable=False)
    float_value: Mapped[float | None] = mapped_column(Double, nullable=True)
    int_value: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    string_value: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (CheckConstraint("kind IN ('float', 'int', 'str')", name="kind"),)


class MeasurementRow(Base):
    """One evaluated checkpoint. `checkpoint_state` records the garbage collector's decisions
    (present, collecting: decided and maybe half deleted, deleted)."""

    __tablename__ = "measurements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), nullable=False)
    step: Mapped[int] = mapped_column(BigInteger, nullable=False)
    checkpoint_path: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("''"))
    elapsed_seconds: Mapped[float] = mapped_column(Double, nullable=False, server_default=text("0"))
    create_time: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    checkpoint_state: Mapped[str] = mapped_column(
        String(STATUS_LENGTH), nullable=False, server_default=text("'present'")
    )

    __table_args__ = (
        UniqueConstraint("trial_id", "step"),
        CheckConstraint("checkpoint_state IN ('present', 'collecting', 'deleted')", name="checkpoint_state"),
    )


class MeasurementMetricRow(Base):
    """One metric of a measurement; NULL `value` means NaN (see NanAsNullDouble)."""

    __tablename__ = "measurement_metrics"

    measurement_id: Mapped[int] = mapped_column(
        ForeignKey("measurements.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    value: Mapped[float] = mapped_column(NanAsNullDouble, nullable=True)


class AuthTokenRow(Base):
    """An access token, stored as the SHA-256 of the token, never the token itself (tokens are 256
    random bits, so a fast hash is enough: there is nothing to guess). `role` is admin, worker or
    reader; `studies` is a JSON list of the study names the token may use, NULL for every study.
    A revoked token keeps its row, so `token list` shows who had access and until when."""

    __tablename__ = "auth_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    role: Mapped[str] = mapped_column(String(STATUS_LENGTH), nullable=False)
    studies: Mapped[str | None] = mapped_column(Text, nullable=True)
    create_time: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    revoke_time: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (CheckConstraint("role IN ('admin', 'worker', 'reader')", name="role"),)
