"""The outermost interceptor: a request id, the log context and the RPC metrics of every call.

Outermost, so it sees every outcome: a call refused for its token (UNAUTHENTICATED), an
undecodable body (INVALID_ARGUMENT), a servicer error. `intercept_service` runs on grpcio's one
polling thread, so it only looks up (or builds once per method) a wrapped handler; everything
else happens in the wrapped behavior on the RPC thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from pbt_service.api.v1 import pbt_service_pb2
from pbt_service.handlers import Behavior, WrappedHandlers, rebuilt
from pbt_service.observability.context import (
    REQUEST_ID_HEADER,
    CallFields,
    bound,
    request_id_from,
    study_and_trial,
)
from pbt_service.observability.metrics import Metrics

__all__ = ["ObservabilityInterceptor", "method_label"]

PBT_SERVICE_PREFIX = f"/{pbt_service_pb2.DESCRIPTOR.services_by_name['PbtService'].full_name}/"
SUGGESTION_METHOD = "GetNewSuggestion"
UNIMPLEMENTED_LABEL = "unknown"
"""The method label of a call to a method the server does not have: one series for all of them,
as the name is whatever the client sent."""


def method_label(full_method: str) -> str:
    """The short name (`GetNewSuggestion`) for the PbtService's methods, the full name
    (`/grpc.health.v1.Health/Check`) for the others."""
    return full_method.removeprefix(PBT_SERVICE_PREFIX) if full_method.startswith(PBT_SERVICE_PREFIX) else full_method


def _code_name(context: grpc.ServicerContext, raised: BaseException | None) -> str:
    """The call's status: what the behavior set or aborted with; OK when it returned without one,
    CANCELLED when the client went away mid-stream, UNKNOWN when it raised without one (grpcio
    then answers UNKNOWN)."""
    code = context.code()
    if code is not None:
        return str(getattr(code, "name", code))
    if raised is None:
        return "OK"
    return "CANCELLED" if isinstance(raised, GeneratorExit) else "UNKNOWN"


class ObservabilityInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Wraps each method's handler once (cached by method, like `DecodeGuard`): the wrapped
    behavior binds the call's `CallFields` for the log lines, sends the request id back as
    initial metadata `x-request-id`, and records `pbt_rpc_requests_total` and
    `pbt_rpc_duration_seconds` in a `finally`, since an abort raises."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._handlers = WrappedHandlers()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:  # grpcio answers UNIMPLEMENTED
            self._metrics.rpc_done(UNIMPLEMENTED_LABEL, "UNIMPLEMENTED", 0.0)
            return None
        method = handler_call_details.method
        streaming = bool(handler.response_streaming)
        return self._handlers.get(
            method, handler, lambda: rebuilt(handler, lambda behavior: self._observed(behavior, method, streaming))
        )

    def _observed(self, behavior: Behavior, method: str, streams_responses: bool) -> Behavior:
        label = method_label(method)
        metrics = self._metrics
        in_flight = metrics.suggestions_waiting if label == SUGGESTION_METHOD else None

        def start(request: Any, context: grpc.ServicerContext) -> CallFields:
            request_id = request_id_from(context.invocation_metadata())
            context.send_initial_metadata(((REQUEST_ID_HEADER, request_id),))
            study, trial_id = study_and_trial(request)
            return CallFields(request_id, label, context.peer(), study, trial_id)

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            raised: BaseException | None = None
            if in_flight is not None:
                in_flight.inc()
            try:
                with bound(start(request, context)):
                    return behavior(request, context)
            except BaseException as error:
                raised = error
                raise
            finally:
                if in_flight is not None:
                    in_flight.dec()
                metrics.rpc_done(label, _code_name(context, raised), time.perf_counter() - started)

        def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            # A generator: grpcio iterates it on the RPC thread, so the fields are bound around each
            # step, and the call is counted when the stream ends, however it ends.
            started = time.perf_counter()
            raised: BaseException | None = None
            try:
                fields = start(request, context)
                with bound(fields):
                    responses = iter(behavior(request, context))
                while True:
                    with bound(fields):
                        try:
                            response = next(responses)
                        except StopIteration:
                            return
                    yield response
            except BaseException as error:
                raised = error
                raise
            finally:
                metrics.rpc_done(label, _code_name(context, raised), time.perf_counter() - started)

        return streaming if streams_responses else unary
