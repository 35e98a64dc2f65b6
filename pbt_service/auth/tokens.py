"""Tokens: how they are made, stored and recognized.

A token is `pbt_` and 43 characters of URL-safe base64 (256 random bits). The database keeps its
SHA-256 only, so a copy of the database opens nothing; with 256 random bits no slow hash is needed.
Comparisons go through `hmac.compare_digest`. The bootstrap admin token (`PBT_AUTH_TOKEN`, from
the environment or a Kubernetes Secret) is compared the same way and has no row.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from pbt_service.core.access import Principal, Role, TokenRecord
from pbt_service.store.base import Storage, Transaction

PREFIX = "pbt_"
BOOTSTRAP_NAME = "PBT_AUTH_TOKEN"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_scope(role: Role, studies: list[str] | None) -> None:
    """Raises ValueError, naming `--study`, for an admin token limited to some studies."""
    if role is Role.ADMIN and studies is not None:
        raise ValueError("--study: an admin token covers every study; leave --study out or use --role worker")


def create_token(
    storage: Storage, name: str, role: Role, studies: list[str] | None, now: datetime
) -> tuple[str, TokenRecord]:
    """A new token and its stored record. The token itself is returned once and kept nowhere.
    Raises ValueError (see `check_scope`) before writing anything."""
    check_scope(role, studies)
    token = new_token()
    record = storage.run(lambda tx: tx.add_token(name, token_hash(token), role, studies, now))
    return token, record


class Authenticator:
    """Finds the principal of a presented token: the bootstrap admin token, or a stored one that is
    not revoked. Every lookup reads the database, so a revocation holds at once on every replica."""

    def __init__(self, admin_token: str | None) -> None:
        self._admin_hash = token_hash(admin_token) if admin_token else None

    def bootstrap(self, token: str) -> Principal | None:
        """The admin principal if `token` is the bootstrap admin token (no database read)."""
        if self._admin_hash is not None and hmac.compare_digest(token_hash(token), self._admin_hash):
            return Principal(BOOTSTRAP_NAME, Role.ADMIN)
        return None

    def principal(self, tx: Transaction, token: str) -> Principal | None:
        """None for an unknown or revoked token."""
        admin = self.bootstrap(token)
        if admin is not None:
            return admin
        digest = token_hash(token)
        record = tx.find_token(digest)
        if record is None or record.revoked or not hmac.compare_digest(record.token_hash, digest):
            return None
        return record.principal()
