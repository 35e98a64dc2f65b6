"""Checks of request fields, shared by the servicer; each raises InvalidArgumentError naming the field."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pbt_service.core.errors import InvalidArgumentError

STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_WORKER_ID = 256
MAX_COUNT = 100
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_CHECKPOINTS = 10_000
DEFAULT_CHECKPOINTS = 1000
MAX_PATH = 4096


def study_name(value: str, field: str = "name") -> str:
    if not value:
        raise InvalidArgumentError(f"{field}: must be set")
    if not STUDY_NAME.match(value):
        raise InvalidArgumentError(
            f"{field}: {value!r} is not a valid study name (letters, digits, '.', '_', '-'; "
            "at most 128 characters, starting with a letter or digit)"
        )
    return value


def worker_id(value: str, field: str = "worker_id") -> str:
    if not value or not value.strip():
        raise InvalidArgumentError(f"{field}: must be set")
    if len(value) > MAX_WORKER_ID:
        raise InvalidArgumentError(f"{field}: at most {MAX_WORKER_ID} characters")
    return value


def optional_worker_id(value: str, field: str = "worker_id") -> str:
    """Empty means "any worker"; anything else must be a valid worker id."""
    return worker_id(value, field) if value else ""


def trial_id(value: int, field: str = "trial_id") -> int:
    if value <= 0:
        raise InvalidArgumentError(f"{field}: must be a positive trial id, got {value}")
    return value


def count(value: int) -> int:
    if value < 0 or value > MAX_COUNT:
        raise InvalidArgumentError(f"count: must be between 0 and {MAX_COUNT}, got {value}")
    return value or 1


def page_size(value: int) -> int:
    if value < 0 or value > MAX_PAGE_SIZE:
        raise InvalidArgumentError(f"page_size: must be between 0 and {MAX_PAGE_SIZE}, got {value}")
    return value or DEFAULT_PAGE_SIZE


def page_token(value: str) -> int:
    """Tokens are the last number seen, as decimal text; anything else is rejected."""
    if not value:
        return 0
    if not value.isdigit() or len(value) > 18:
        raise InvalidArgumentError(f"page_token: {value!r} is not a token returned by ListTrials")
    return int(value)


def max_checkpoints(value: int) -> int:
    if value < 0 or value > MAX_CHECKPOINTS:
        raise InvalidArgumentError(f"max_checkpoints: must be between 0 and {MAX_CHECKPOINTS}, got {value}")
    return value or DEFAULT_CHECKPOINTS


def checkpoint_paths(values: Sequence[str], field: str = "paths") -> list[str]:
    """Paths a collector confirms deleted: bounded in number and length, none empty."""
    if len(values) > MAX_CHECKPOINTS:
        raise InvalidArgumentError(f"{field}: at most {MAX_CHECKPOINTS} paths per call, got {len(values)}")
    for i, value in enumerate(values):
        if not value or len(value) > MAX_PATH:
            raise InvalidArgumentError(f"{field}[{i}]: must be a non-empty path of at most {MAX_PATH} characters")
    return list(values)


def generation(value: int, field: str = "generation") -> int:
    if value < 0:
        raise InvalidArgumentError(f"{field}: must be >= 0, got {value}")
    return value


def text(value: str, field: str, limit: int = 4096) -> str:
    """A free-text field (a reason, a message) bounded so it cannot bloat the database."""
    if len(value) > limit:
        raise InvalidArgumentError(f"{field}: at most {limit} characters, got {len(value)}")
    return value
