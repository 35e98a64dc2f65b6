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
    "AlreadyExistsError", "DatabaseConfigError", "NotFoundError", "SchemaOutdatedError", "StoreError",
    "TrialFullError", "TrialStateError", "UnavailableError",
]


class StoreError(PbtError):
    """Base class of the errors only the store raises."""


class DatabaseConfigError(StoreError):
    """The database refuses for a reason retrying cannot fix: a wrong password or user, an unknown
    database, a missing table (no schema). Raised at once, never retried, and mapped to INTERNAL:
    the service is misconfigured, which is neither the client's fault nor worth the client's
    retries (UNAVAILABLE would invite them). The message names the URL with its password hidden."""


class SchemaOutdatedError(StoreError):
    """The database schema is older than this code; the message names the upgrade command."""


class TrialStateError(StoreError, FailedPreconditionError):
    """A trial is not in the state a change needs: not ACTIVE, or nothing to complete with
    (FAILED_PRECONDITION)."""


class TrialFullError(StoreError, FailedPreconditionError):
    """A trial already holds the most measurements a trial may (FAILED_PRECONDITION)."""
