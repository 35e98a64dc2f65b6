"""One place that turns domain and store errors into gRPC status codes.

Every servicer method is wrapped by `rpc_errors`: validation `ValueError`s become INVALID_ARGUMENT,
store errors their own codes, and anything unexpected INTERNAL with a generic message (the stack
trace goes to the server log, never to the client).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import grpc

from pbt_service.store.errors import AlreadyExistsError, NotFoundError, TrialStateError, UnavailableError

log = logging.getLogger(__name__)


class PreconditionError(Exception):
    """The request is valid but the trial or study is in the wrong state (FAILED_PRECONDITION)."""


F = TypeVar("F", bound=Callable[..., Any])

_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (PreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (TrialStateError, grpc.StatusCode.FAILED_PRECONDITION),
    (UnavailableError, grpc.StatusCode.UNAVAILABLE),
    (ValueError, grpc.StatusCode.INVALID_ARGUMENT),
)


def abort(context: grpc.ServicerContext, error: BaseException) -> NoReturn:
    for kind, code in _CODES:
        if isinstance(error, kind):
            context.abort(code, str(error))
    log.exception("unexpected error", exc_info=error)
    context.abort(grpc.StatusCode.INTERNAL, "internal error; see the service log")
    raise RuntimeError("context.abort returned")  # grpc's abort always raises


def rpc_errors(method: F) -> F:
    """Maps exceptions raised by a servicer method to a status with `context.abort`."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as error:  # noqa: BLE001 - every error must become a status
            abort(context, error)

    return wrapper  # type: ignore[return-value]
