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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc

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


def _reject(context: grpc.ServicerContext, method: str, request: Undecodable) -> NoReturn:
    log.warning("undecodable request to %s from %s: %d bytes, not a %s (%s)",
                method, context.peer(), request.size, request.message_type, request.error)  # fmt: skip
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request body is not a valid {request.message_type}")
    raise RuntimeError("context.abort returned")  # grpc's abort always raises


def _checked(requests: Iterator[Any], context: grpc.ServicerContext, method: str) -> Iterator[Any]:
    for request in requests:
        if isinstance(request, Undecodable):
            _reject(context, method, request)
        yield request


_HANDLER_FACTORIES: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}
"""By (request_streaming, response_streaming)."""


def guarded(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """`handler` with a tolerant deserializer and a behavior that rejects `Undecodable` requests."""
    shape = (bool(handler.request_streaming), bool(handler.response_streaming))
    behavior = {
        (False, False): handler.unary_unary,
        (False, True): handler.unary_stream,
        (True, False): handler.stream_unary,
        (True, True): handler.stream_stream,
    }[shape]

    def from_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        return behavior(_checked(requests, context, method), context)

    def from_one(request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(request, Undecodable):
            _reject(context, method, request)
        return behavior(request, context)

    return _HANDLER_FACTORIES[shape](
        from_stream if handler.request_streaming else from_one,
        request_deserializer=tolerant(handler.request_deserializer),
        response_serializer=handler.response_serializer,
    )


class DecodeGuard(grpc.ServerInterceptor):  # type: ignore[misc]
    """Wraps every method handler of every service on the server with `guarded`.

    Put it after the auth interceptor: a call without the token is then refused before its body is
    parsed. A guarded handler is built once per method and reused.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method = handler_call_details.method
        known = self._handlers.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = guarded(handler, method)
        self._handlers[method] = (handler, wrapped)
        return wrapped
