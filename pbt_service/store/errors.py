"""Typed store errors; the servicer maps each to one gRPC status code."""


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class NotFoundError(StoreError, KeyError):
    """A study or trial does not exist (NOT_FOUND)."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable.
        return str(self.args[0]) if self.args else ""


class AlreadyExistsError(StoreError, ValueError):
    """A study name is taken (ALREADY_EXISTS)."""


class UnavailableError(StoreError):
    """The database cannot be reached or kept failing after retries (UNAVAILABLE)."""


class SchemaOutdatedError(StoreError):
    """The database schema is older than this code; the message names the upgrade command."""


class TrialStateError(StoreError, ValueError):
    """A trial is not in the state a change needs: not ACTIVE, or nothing to complete with
    (FAILED_PRECONDITION)."""
