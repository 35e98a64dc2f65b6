"""Request bodies that do not parse become INVALID_ARGUMENT, with one log line and nothing kept.

grpcio (measured on 1.85.3) answers an undecodable request body with INTERNAL "Exception
deserializing request!", logs a full traceback, and keeps about 19 KiB of the server's memory for
good. After that first abort has sent the status, `_unary_request` in `grpc/_server.py` wakes when the
call closes, still has no request, and aborts a second time ("requires exactly one request message").
The core refuses that batch (GRPC_CALL_ERROR_TOO_MANY_OPERATIONS), and cygrpc's `Call._start_batch`,
which took a reference to the batch's tag before starting it, never drops it: the tag holds the call
(with its arena) and the RPC's state. Any client can send such bodies, so the service never
lets grpcio see a deserialization fail: `DecodeGuard` gives every handler a deserializer that returns
an `Undecodable` marker instead of raising, and a behavior that aborts with INVALID_ARGUMENT on it,
through the same path as any other rejected request. Measurements: docs/security.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc

from pbt_service.handlers import Behavior, WrappedHandlers, rebuilt

__all__ = ["DecodeGuard", "Undecodable", "tolerant"]

log = logging.getLogger(__name__)
Deserializer = Callable[[bytes], Any]


@dataclass(frozen=True)
class Undecodable:
    """Stands in for a request body that did not parse; `DecodeGuard` rejects it before any servicer."""

    message_type: str
    size: int
    error: str


def _type_name(deserializer: Deserializer) -> str:
    """The message type a generated deserializer (`SomeRequest.FromString`) parses, else "request"."""
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    name = getattr(descriptor, "full_name", None)
    return name if isinstance(name, str) else "request"


def tolerant(deserializer: Deserializer) -> Deserializer:
    """`deserializer`, returning an `Undecodable` where it would raise."""
    message_type = _type_name(deserializer)

    def deserialize(body: bytes) -> Any:
        try:
            return deserializer(body)
        except Exception as error:  # noqa: BLE001 - any failure to parse is the body's fault
            return Undecodable(message_type, len(body), f"{type(error).__name__}: {error}"[:200])

    return deserialize


class _LogBudget:
    """At most `per_second` log lines a second: a client sending undecodable bodies in a loop must
    not fill the log (or spend the server's time writing it). The first line after a quiet spell
    says how many were left out."""

    def __init__(self, per_second: int = 10) -> None:
        self._per_second = per_second
        self._lock = threading.Lock()
        self._window = 0
        self._used = 0
        self._dropped = 0

    def take(self) -> int | None:
        """None when this line is over budget; else how many were dropped before it."""
        now = int(time.monotonic())
        with self._lock:
            if now != self._window:
                self._window, self._used = now, 0
            if self._used >= self._per_second:
                self._dropped += 1
                return None
            self._used += 1
            dropped, self._dropped = self._dropped, 0
            return dropped


_LOG_BUDGET = _LogBudget()


def _reject(context: grpc.ServicerContext, method: str, request: Undecodable) -> NoReturn:
    dropped = _LOG_BUDGET.take()
    if dropped is not None:
        also = f" ({dropped} more not logged)" if dropped else ""
        log.warning("undecodable request to %s from %s: %d bytes, not a %s (%s)%s",
                    method, context.peer(), request.size, request.message_type, request.error, also)  # fmt: skip
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request body is not a valid {request.message_type}")
    raise RuntimeError("context.abort returned")  # grpc's abort always raises


def _checked(requests: Iterator[Any], context: grpc.ServicerContext, method: str) -> Iterator[Any]:
    for request in requests:
        if isinstance(request, Undecodable):
            _reject(context, method, request)
        yield request


def guarded(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """`handler` with a tolerant deserializer and a behavior that rejects `Undecodable` requests."""

    def wrap(behavior: Behavior) -> Behavior:
        def from_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            return behavior(_checked(requests, context, method), context)

        def from_one(request: Any, context: grpc.ServicerContext) -> Any:
            if isinstance(request, Undecodable):
                _reject(context, method, request)
            return behavior(request, context)

        return from_stream if handler.request_streaming else from_one

    return rebuilt(handler, wrap, tolerant(handler.request_deserializer))


class DecodeGuard(grpc.ServerInterceptor):  # type: ignore[misc]
    """Wraps every method handler of every service on the server with `guarded`.

    Put it after the auth interceptor: a call without the token is then refused before its body is
    parsed. A guarded handler is built once per method and reused.
    """

    def __init__(self) -> None:
        self._handlers = WrappedHandlers()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method = handler_call_details.method
        return self._handlers.get(method, handler, lambda: guarded(handler, method))
