"""Rebuilding a gRPC method handler around its behavior, whatever its shape.

The server's interceptors (`pbt_service.decoding`, `pbt_service.auth`, `pbt_service.observability`)
each wrap the handler the next one returns: a wrapper sees the call's request (or request iterator)
and context, and calls the behavior it wraps. grpcio calls `intercept_service` on its one polling
thread, so anything slow (a database lookup) must happen in the wrapped behavior, which runs on an
RPC thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

Behavior = Callable[[Any, grpc.ServicerContext], Any]
"""A handler's behavior: (request or request iterator, context) -> response or response iterator."""

_FACTORIES: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}
"""By (request_streaming, response_streaming)."""


def shape(handler: grpc.RpcMethodHandler) -> tuple[bool, bool]:
    return bool(handler.request_streaming), bool(handler.response_streaming)


def behavior_of(handler: grpc.RpcMethodHandler) -> Behavior:
    behavior: Behavior = {
        (False, False): handler.unary_unary,
        (False, True): handler.unary_stream,
        (True, False): handler.stream_unary,
        (True, True): handler.stream_stream,
    }[shape(handler)]
    return behavior


def rebuilt(
    handler: grpc.RpcMethodHandler,
    wrap: Callable[[Behavior], Behavior],
    deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """`handler` with its behavior replaced by `wrap(behavior)` (and its request deserializer by
    `deserializer`, when given); serializers and shape stay."""
    return _FACTORIES[shape(handler)](
        wrap(behavior_of(handler)),
        request_deserializer=deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class WrappedHandlers:
    """Each method's wrapped handler, built once and rebuilt only when the handler it wraps changes
    (the next interceptor may answer one method with different handlers, e.g. a refusal)."""

    def __init__(self) -> None:
        self._handlers: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def get(
        self, method: str, handler: grpc.RpcMethodHandler, build: Callable[[], grpc.RpcMethodHandler]
    ) -> grpc.RpcMethodHandler:
        known = self._handlers.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = build()
        self._handlers[method] = (handler, wrapped)
        return wrapped
