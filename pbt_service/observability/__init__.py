"""Metrics, structured logs and the database health monitor of one server.

PLACEHOLDER INTERFACE: being implemented (see the operations work); the server wires exactly this.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from grpc_health.v1 import health

from pbt_service.store.base import Storage


class _PassThrough(grpc.ServerInterceptor):  # type: ignore[misc]
    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        return continuation(handler_call_details)


class Observability:
    def __init__(
        self,
        storage: Storage,
        health_servicer: health.HealthServicer,
        *,
        services: Sequence[str],
        metrics_host: str,
        metrics_port: int | None,
        health_check_seconds: float,
    ) -> None:
        self.metrics_port: int | None = None

    def interceptor(self) -> grpc.ServerInterceptor:
        return _PassThrough()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass
