"""Domain errors: what went wrong, by kind, so the transport maps each kind to one status.

Every error raised on purpose is a `PbtError`; anything else is a bug and is reported to a
client as an internal error, never as the client's fault.
"""

from __future__ import annotations


class PbtError(Exception):
    """Base class of every error raised on purpose."""


class InvalidArgumentError(PbtError, ValueError):
    """The request is malformed; the message names the field (INVALID_ARGUMENT)."""


class NotFoundError(PbtError, KeyError):
    """A study or trial does not exist (NOT_FOUND)."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable.
        return str(self.args[0]) if self.args else ""


class AlreadyExistsError(PbtError, ValueError):
    """A name is taken (ALREADY_EXISTS)."""


class FailedPreconditionError(PbtError):
    """The request is valid but the study or trial is in the wrong state (FAILED_PRECONDITION)."""


class UnavailableError(PbtError):
    """The database cannot be reached or kept failing after retries (UNAVAILABLE)."""
