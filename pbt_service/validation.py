"""Checks of request fields, shared by the servicer; each raises InvalidArgumentError naming the field
and the limit (the limits are `pbt_service.limits`). Page tokens are made and read here too."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence

from pbt_service import converters, limits
from pbt_service.api.v1 import study_pb2, trial_pb2
from pbt_service.core.errors import InvalidArgumentError
from pbt_service.core.types import Measurement
from pbt_service.limits import quote

STUDY_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{limits.MAX_NAME_LENGTH - 1}}}")
"""A study name, matched whole (`fullmatch`: no trailing newline slips through)."""
_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{1,{limits.MAX_PAGE_TOKEN_LENGTH}}}")
_TOKEN_VERSION = "v1"
_TRIAL_NUMBER = re.compile(r"[1-9][0-9]{0,18}")


def study_name(value: str, field: str = "name") -> str:
    if not value:
        raise InvalidArgumentError(f"{field}: must be set")
    if not STUDY_NAME.fullmatch(value):
        raise InvalidArgumentError(
            f"{field}: {quote(value)} is not a valid study name (letters, digits, '.', '_', '-'; "
            f"at most {limits.MAX_NAME_LENGTH} characters, starting with a letter or digit)"
        )
    return value


def worker_id(value: str, field: str = "worker_id") -> str:
    """Non-empty, at most `MAX_WORKER_ID_LENGTH` characters, no control character, no surrounding
    whitespace (" w1" and "w1" would be two workers)."""
    if not value or not value.strip():
        raise InvalidArgumentError(f"{field}: must be set")
    limits.check_text(value, field, limits.MAX_WORKER_ID_LENGTH)
    if value != value.strip():
        raise InvalidArgumentError(f"{field}: {quote(value)} has leading or trailing whitespace")
    return value


def optional_worker_id(value: str, field: str = "worker_id") -> str:
    """Empty means "any worker"; anything else must be a valid worker id."""
    return worker_id(value, field) if value else ""


def trial_id(value: int, field: str = "trial_id") -> int:
    if value <= 0:
        raise InvalidArgumentError(f"{field}: must be a positive trial id, got {value}")
    return value


def count(value: int) -> int:
    return _how_many(value, "count", limits.MAX_COUNT, 1)


def page_size(value: int) -> int:
    return _how_many(value, "page_size", limits.MAX_PAGE_SIZE, limits.DEFAULT_PAGE_SIZE)


def max_checkpoints(value: int) -> int:
    return _how_many(value, "max_checkpoints", limits.MAX_CHECKPOINTS, limits.DEFAULT_CHECKPOINTS)


def _how_many(value: int, field: str, most: int, default: int) -> int:
    """A requested number of items: 0 (unset) means `default`, otherwise 1 to `most`."""
    if value < 0 or value > most:
        raise InvalidArgumentError(f"{field}: must be between 0 and {most}, got {value}")
    return value or default


def checkpoint_paths(values: Sequence[str], field: str = "paths") -> list[str]:
    """Paths a collector confirms deleted: bounded in number and length, none empty."""
    if len(values) > limits.MAX_CHECKPOINTS:
        raise InvalidArgumentError(f"{field}: at most {limits.MAX_CHECKPOINTS} paths per call, got {len(values)}")
    for i, value in enumerate(values):
        if not value:
            raise InvalidArgumentError(f"{field}[{i}]: must be a non-empty path")
        limits.check_text(value, f"{field}[{i}]", limits.MAX_CONFIRMED_PATH_LENGTH)
    return list(values)


def generation(value: int, field: str = "generation") -> int:
    if value < 0:
        raise InvalidArgumentError(f"{field}: must be >= 0, got {value}")
    return value


def text(value: str, field: str, limit: int = limits.MAX_TEXT_LENGTH) -> str:
    """A free-text field (a reason, a message): bounded so it cannot bloat every reply, without NUL
    (newlines and tabs are fine)."""
    return limits.check_text(value, field, limit, control=True)


def config_size(message: study_pb2.StudyConfig, field: str = "config") -> None:
    """The encoded config within `MAX_CONFIG_BYTES`, checked before anything else reads it."""
    size = message.ByteSize()
    if size > limits.MAX_CONFIG_BYTES:
        raise InvalidArgumentError(f"{field}: encodes to {size} bytes; at most {limits.MAX_CONFIG_BYTES} are allowed")


def measurement(message: trial_pb2.Measurement, field: str = "measurement") -> Measurement:
    """A reported measurement: at most `MAX_METRICS_PER_MEASUREMENT` metrics with valid names, a
    checkpoint path within `MAX_PATH_LENGTH` and without control characters, and an encoding
    within `MAX_MEASUREMENT_BYTES` (what bounds a trial's reply)."""
    limits.check_count(message.metrics, limits.MAX_METRICS_PER_MEASUREMENT, f"{field}.metrics", "metrics")
    limits.check_text(message.checkpoint_path, f"{field}.checkpoint_path", limits.MAX_PATH_LENGTH)
    for name in sorted(message.metrics):
        limits.check_name(name, f"{field}.metrics")
    size = message.ByteSize()
    if size > limits.MAX_MEASUREMENT_BYTES:
        raise InvalidArgumentError(
            f"{field}: encodes to {size} bytes (metric names and checkpoint path); "
            f"at most {limits.MAX_MEASUREMENT_BYTES} are allowed"
        )
    return converters.measurement_from_proto(message, field)


# --- page tokens ------------------------------------------------------------------------------


def page_token_for(kind: str, cursor: int | str) -> str:
    """The opaque token that continues a listing of `kind` after `cursor`: URL-safe base64 (no
    padding) of "v1:<kind>:<cursor>"."""
    raw = f"{_TOKEN_VERSION}:{kind}:{cursor}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def trials_page_token(value: str) -> int:
    """The trial number a ListTrials token continues after; 0 for no token."""
    cursor = _cursor(value, "trials", "ListTrials")
    if cursor is None:
        return 0
    if not _TRIAL_NUMBER.fullmatch(cursor) or int(cursor) > limits.MAX_INT64:
        raise _bad_token("ListTrials")
    return int(cursor)


def studies_page_token(value: str) -> str:
    """The study name a ListStudies token continues after; "" for no token."""
    cursor = _cursor(value, "studies", "ListStudies")
    if cursor is None:
        return ""
    if not STUDY_NAME.fullmatch(cursor):
        raise _bad_token("ListStudies")
    return cursor


def _cursor(value: str, kind: str, rpc: str) -> str | None:
    """The cursor inside a token the service issued for `kind`; None for no token. Anything else
    (another kind, a non-canonical encoding, a made-up value) raises InvalidArgumentError."""
    if not value:
        return None
    if not _TOKEN.fullmatch(value):
        raise _bad_token(rpc)
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad_token(rpc) from None
    prefix = f"{_TOKEN_VERSION}:{kind}:"
    if not text.startswith(prefix) or page_token_for(kind, text[len(prefix) :]) != value:
        raise _bad_token(rpc)
    return text[len(prefix) :]


def _bad_token(rpc: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"page_token: not a token returned by {rpc}; pass next_page_token unchanged")
