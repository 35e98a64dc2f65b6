"""One place that turns domain errors into gRPC status codes, by exception type.

Every servicer method is wrapped by `rpc_errors`. Errors raised on purpose (`PbtError`) map to
their code with their message; anything else is a bug, never the client's fault: INTERNAL with an
error id that is logged with the stack trace on the server, and no stack trace to the client.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import grpc

from pbt_service.core.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (UnavailableError, grpc.StatusCode.UNAVAILABLE),
)
"""Checked in order; the first matching type wins."""


def status_of(error: BaseException) -> grpc.StatusCode:
    """The status code an error maps to; INTERNAL for anything not raised on purpose."""
    for kind, code in CODES:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


def abort(context: grpc.ServicerContext, error: BaseException) -> NoReturn:
    code = status_of(error)
    if code is not grpc.StatusCode.INTERNAL:
        context.abort(code, str(error))
    error_id = uuid.uuid4().hex[:12]
    log.error("internal error %s", error_id, exc_info=error)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error {error_id}; see the service log")
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
