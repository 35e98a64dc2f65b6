"""What the log lines of one call say about it: request id, method, study, trial, peer.

The observability interceptor binds a `CallFields` for the time its wrapped behavior runs, on the
RPC thread that runs it; the JSON log formatter reads it back, so every line logged while serving
a call (the servicer's, the controller's, `grpc_errors`' internal-error line) carries the call's
request id without any code passing it along. A `ContextVar`, not a thread-local: a value bound in
one call can never leak into the next call the same pool thread serves (`bound` resets it).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

__all__ = ["REQUEST_ID_HEADER", "CallFields", "bound", "current", "request_id_from", "study_and_trial"]

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"[\x20-\x7e]{1,128}")
"""A client's request id is kept when it is 1 to 128 printable ASCII characters; anything else
(a log-injection attempt, a megabyte of text) is replaced by a fresh id."""


@dataclass(frozen=True)
class CallFields:
    """The log fields of one call; None where unknown (the JSON formatter leaves those out)."""

    request_id: str
    method: str
    peer: str | None = None
    study: str | None = None
    trial_id: int | None = None

    def as_dict(self) -> dict[str, str | int]:
        found = {"request_id": self.request_id, "method": self.method, "study": self.study,
                 "trial_id": self.trial_id, "peer": self.peer}  # fmt: skip
        return {key: value for key, value in found.items() if value is not None}


_CALL: ContextVar[CallFields | None] = ContextVar("pbt_call_fields", default=None)


def current() -> CallFields | None:
    """The fields of the call being served on this thread, if any."""
    return _CALL.get()


@contextlib.contextmanager
def bound(fields: CallFields) -> Iterator[None]:
    """Binds `fields` for the duration of the block, then restores what was bound before."""
    token = _CALL.set(fields)
    try:
        yield
    finally:
        _CALL.reset(token)


def request_id_from(metadata: Sequence[tuple[str, Any]] | None) -> str:
    """The client's `x-request-id` when it is valid, else a new uuid4 hex. Only this one key is
    read: other metadata (`authorization` above all) is never looked at, so it cannot be logged."""
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and _VALID_REQUEST_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


def study_and_trial(request: object) -> tuple[str | None, int | None]:
    """The study (`study` or `name` field) and trial id (`trial_id`) a request names, when it is
    a protobuf message with such fields set; (None, None) for anything else (an `Undecodable`
    marker, a request stream)."""
    if not isinstance(request, Message):
        return None, None
    fields = request.DESCRIPTOR.fields_by_name
    study: str | None = None
    for name in ("study", "name"):
        field = fields.get(name)
        if field is not None and field.type == field.TYPE_STRING:
            value = getattr(request, name)
            if value:
                study = value[:200]
                break
    trial_id: int | None = None
    if "trial_id" in fields:
        value = getattr(request, "trial_id", None)
        if isinstance(value, int) and not isinstance(value, bool) and value:  # not a repeated field
            trial_id = value
    return study, trial_id
