"""Operations: Prometheus metrics, structured logs and the database health monitor of one server.

`Observability` is what `pbt_service.server.create_server` wires: its `interceptor()` goes first
in the interceptor chain (request ids, log context, RPC metrics), `events` is given to the
`Controller` (lease expiries, suggestion waits, database errors), and `start()` opens the metrics
HTTP server and starts the health monitor. Everything is per server: its own registry, its own
listeners, so servers sharing a process never count each other's calls. `configure_logging` (in
`logs`) is the CLI's. See docs/operations.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from wsgiref.simple_server import WSGIServer

import grpc
from grpc_health.v1 import health
from prometheus_client import start_http_server

from pbt_service.controller.controller import ControllerEvents
from pbt_service.observability.health import HealthMonitor
from pbt_service.observability.interceptor import ObservabilityInterceptor
from pbt_service.observability.logs import configure_logging
from pbt_service.observability.metrics import Metrics
from pbt_service.store.base import Storage
from pbt_service.store.sql_storage import SqlStorage

__all__ = ["Observability", "configure_logging"]

log = logging.getLogger(__name__)


class Observability:
    """The metrics, log context and health monitor of one server.

    `metrics_port` None serves no metrics (they are still counted: cheap, and `metrics.registry`
    can be read in-process); 0 picks a free port, which `metrics_port` holds after `start()`.
    """

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
        self.metrics = Metrics(storage)
        self.metrics_port: int | None = None
        self._metrics_host = metrics_host.strip().removeprefix("[").removesuffix("]")
        self._wanted_port = metrics_port
        self._http: tuple[WSGIServer, threading.Thread] | None = None
        self._monitor = HealthMonitor(storage, health_servicer, services, health_check_seconds, self._probed)
        self._interceptor = ObservabilityInterceptor(self.metrics)
        self._unlisten: Callable[[], None] | None = None
        if isinstance(storage, SqlStorage):
            self._unlisten = storage.add_retry_listener(self.metrics.transaction_retried)

    @property
    def events(self) -> ControllerEvents:
        """For `Controller(..., events=...)`."""
        return self.metrics

    @property
    def monitor(self) -> HealthMonitor:
        return self._monitor

    def interceptor(self) -> grpc.ServerInterceptor:
        return self._interceptor

    def start(self) -> None:
        """Opens the metrics port (raising OSError when it cannot be bound) and starts the monitor."""
        if self._wanted_port is not None:
            server, thread = start_http_server(self._wanted_port, self._metrics_host, registry=self.metrics.registry)
            self._http = (server, thread)
            self.metrics_port = int(server.server_port)
        self._monitor.start()

    def stop(self) -> None:
        """Stops the monitor (health stays as it is: NOT_SERVING after a graceful shutdown) and
        closes the metrics port."""
        self._monitor.stop()
        if self._http is not None:
            server, thread = self._http
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            self._http = None
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None

    def _probed(self, ok: bool) -> None:
        self.metrics.database.probe_up = ok
