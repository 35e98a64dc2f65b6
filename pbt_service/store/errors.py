"""Typed store errors: the domain kinds (`pbt_service.core.errors`) the store raises, and its own.

The transport maps each kind to one gRPC status code.
"""

from pbt_service.core.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    NotFoundError,
    PbtError,
    UnavailableError,
)

__all__ = [
    "AlreadyExistsError", "NotFoundError", "SchemaOutdatedError", "StoreError", "TrialStateError", "UnavailableError",
]


class StoreError(PbtError):
    """Base class of the errors only the store raises."""


class SchemaOutdatedError(StoreError):
    """The database schema is older than this code; the message names the upgrade command."""


class TrialStateError(StoreError, FailedPreconditionError):
    """A trial is not in the state a change needs: not ACTIVE, or nothing to complete with
    (FAILED_PRECONDITION)."""
