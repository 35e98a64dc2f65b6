"""The SQL of the service-wide reads and writes that are not about one study's evolution: access
tokens, the study of a trial (for authorization) and trial counts (for metrics)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from pbt_service.core.access import Role, TokenRecord
from pbt_service.core.types import TrialStatus
from pbt_service.store.errors import AlreadyExistsError, NotFoundError
from pbt_service.store.models import AuthTokenRow
from pbt_service.store.sql_rows import STUDIES, TRIALS, utc

TOKENS: Table = AuthTokenRow.__table__  # type: ignore[assignment]


def _record(row: Any) -> TokenRecord:
    studies = None if row.studies is None else tuple(json.loads(row.studies))
    return TokenRecord(
        id=row.id, name=row.name, token_hash=row.token_hash, role=Role(row.role), studies=studies,
        create_time=utc(row.create_time), revoke_time=None if row.revoke_time is None else utc(row.revoke_time),
    )  # fmt: skip


def add_token(
    db: Connection, name: str, token_hash: str, role: Role, studies: Sequence[str] | None, now: datetime
) -> TokenRecord:
    values = {
        "name": name, "token_hash": token_hash, "role": role.value,
        "studies": None if studies is None else json.dumps(sorted(set(studies))), "create_time": utc(now),
    }  # fmt: skip
    try:
        with db.begin_nested():
            token_id = db.scalar(insert(TOKENS).values(values).returning(TOKENS.c.id))
    except IntegrityError:
        raise AlreadyExistsError("a token with this hash is already stored") from None
    return _record(db.execute(select(TOKENS).where(TOKENS.c.id == token_id)).one())


def find_token(db: Connection, token_hash: str) -> TokenRecord | None:
    row = db.execute(select(TOKENS).where(TOKENS.c.token_hash == token_hash)).one_or_none()
    return None if row is None else _record(row)


def revoke_token(db: Connection, token_id: int, now: datetime) -> TokenRecord:
    db.execute(
        update(TOKENS).where(TOKENS.c.id == token_id, TOKENS.c.revoke_time.is_(None)).values(revoke_time=utc(now))
    )
    row = db.execute(select(TOKENS).where(TOKENS.c.id == token_id)).one_or_none()
    if row is None:
        raise NotFoundError(f"token {token_id} not found")
    return _record(row)


def list_tokens(db: Connection) -> list[TokenRecord]:
    return [_record(row) for row in db.execute(select(TOKENS).order_by(TOKENS.c.id))]


def study_of_trial(db: Connection, trial_id: int) -> str | None:
    query = select(STUDIES.c.name).join(TRIALS, TRIALS.c.study_id == STUDIES.c.id).where(TRIALS.c.id == trial_id)
    name: str | None = db.scalar(query)
    return name


def trial_counts(db: Connection) -> list[tuple[str, TrialStatus, int]]:
    query = (
        select(STUDIES.c.name, TRIALS.c.status, func.count())
        .join(TRIALS, TRIALS.c.study_id == STUDIES.c.id)
        .group_by(STUDIES.c.name, TRIALS.c.status)
        .order_by(STUDIES.c.name, TRIALS.c.status)
    )
    return [(name, TrialStatus(status), int(count)) for name, status, count in db.execute(query)]
