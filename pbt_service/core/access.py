"""Who may do what: roles, the actions of the API, and the principal a token stands for.

Pure rules, no I/O: the service's interceptor (`pbt_service.auth`) finds the principal of a call's
token and the study it touches, and asks `Principal.allows` and `Principal.covers`. Roles:

| role | actions | studies |
|---|---|---|
| admin | read, write, admin (create studies) | every study |
| worker | read, write (suggestions, reports, pause, checkpoints) | its own list, or every study |
| reader | read (dashboards, `pbt-results`) | its own list, or every study |
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Role(enum.Enum):
    ADMIN = "admin"
    WORKER = "worker"
    READER = "reader"


class Action(enum.Enum):
    """What a method does: READ only reads; WRITE changes a study's trials or state; ADMIN creates
    studies (and anything an admin alone may do)."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


ALLOWED: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.WORKER: frozenset({Action.READ, Action.WRITE}),
    Role.READER: frozenset({Action.READ}),
}


@dataclass(frozen=True)
class Principal:
    """The holder of a token: `studies` None means every study. `token_id` is None for the
    bootstrap admin token (`PBT_AUTH_TOKEN`), which has no row."""

    name: str
    role: Role
    studies: frozenset[str] | None = None
    token_id: int | None = None

    def __post_init__(self) -> None:
        if self.role is Role.ADMIN and self.studies is not None:
            raise ValueError("an admin token covers every study; it cannot be limited to some")

    def allows(self, action: Action) -> bool:
        return action in ALLOWED[self.role]

    def covers(self, study: str) -> bool:
        return self.studies is None or study in self.studies


@dataclass(frozen=True)
class TokenRecord:
    """A stored token: its hash, never the token."""

    id: int
    name: str
    token_hash: str
    role: Role
    studies: tuple[str, ...] | None
    create_time: datetime
    revoke_time: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoke_time is not None

    def principal(self) -> Principal:
        studies = None if self.studies is None else frozenset(self.studies)
        return Principal(self.name, self.role, studies, self.id)
