"""Wiring: settings -> storage -> servicer -> gRPC server with health, reflection, access
control, TLS, limits, metrics and logs.

Safe by default: the server binds 127.0.0.1 unless told otherwise, logs a WARNING at start when it
serves a non-loopback address without tokens, refuses every call but health checks without a valid
token when tokens are on (`PBT_AUTH_TOKEN` or `--require-token`), answers request bodies that do
not parse with INVALID_ARGUMENT (`pbt_service.decoding`), and bounds what one client can take
(`transport.server_options`). See docs/security.md and docs/operations.md.

The interceptors, outermost first: observability (request id, log context, metrics: it sees every
outcome), access (token and study checks, before the body is even parsed for a call without a
token), decoding (undecodable bodies).
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from pbt_service.api.v1 import pbt_service_pb2, pbt_service_pb2_grpc
from pbt_service.auth import AccessInterceptor, Authenticator
from pbt_service.controller import Controller, ServiceSettings, utc_now
from pbt_service.core import pb2
from pbt_service.decoding import DecodeGuard
from pbt_service.fairness import ClientScores, FairExecutor, ScoringInterceptor
from pbt_service.observability import Observability
from pbt_service.options import DEFAULT_HOST
from pbt_service.service import PbtServicer
from pbt_service.store.base import Storage
from pbt_service.store.engine import shown_url
from pbt_service.store.sql_storage import SqlStorage, StorageSettings
from pbt_service.transport import LimitSettings, TlsSettings, bind, server_options

log = logging.getLogger(__name__)
SERVICE_NAME = pbt_service_pb2.DESCRIPTOR.services_by_name["PbtService"].full_name
LIVENESS = "liveness"
"""A health name for liveness probes: SERVING from start to shutdown, whatever the database does.
"" and SERVICE_NAME (readiness) are NOT_SERVING while the database is unreachable; restarting the
replica would not bring the database back, so liveness does not follow it."""
__all__ = ["DEFAULT_HOST", "LIVENESS", "SERVICE_NAME", "LimitSettings", "RunningServer", "ServerSettings",
           "TlsSettings", "create_server", "serve"]


@dataclass(frozen=True)
class ServerSettings:
    """Parsed once from the command line (`pbt_service.options`); `port` 0 picks a free port,
    `host` "0.0.0.0" or "[::]" serves every interface (require tokens then).

    `auth_token` is the bootstrap admin token; tokens are checked when it is set or
    `require_token` is (stored tokens only). `metrics_port` None serves no metrics, 0 a free port.
    """

    database_url: str = "sqlite:///pbt.db"
    host: str = DEFAULT_HOST
    port: int = 50051
    max_workers: int = 16
    auth_token: str | None = None
    require_token: bool = False
    grace_seconds: float = 10.0
    service: ServiceSettings = field(default_factory=ServiceSettings)
    tls: TlsSettings | None = None
    limits: LimitSettings = field(default_factory=LimitSettings)
    metrics_host: str = DEFAULT_HOST
    metrics_port: int | None = None
    health_check_seconds: float = 2.0

    @property
    def tokens_required(self) -> bool:
        return bool(self.auth_token) or self.require_token


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    storage: Storage
    observability: Observability
    executor: FairExecutor

    @property
    def metrics_port(self) -> int | None:
        return self.observability.metrics_port

    def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown: report NOT_SERVING, let calls in flight finish, release the database."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        self.executor.shutdown(wait=False)
        self.observability.stop()
        self.storage.close()


def is_loopback(host: str) -> bool:
    """Whether `host` (an address to bind, as in "host:port") reaches this machine only.

    Names other than "localhost" count as reachable from elsewhere: what they resolve to can change.
    """
    name = host.strip().removeprefix("[").removesuffix("]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _warn_if_exposed(settings: ServerSettings, port: int) -> None:
    if settings.tokens_required or is_loopback(settings.host):
        return
    log.warning(
        "UNPROTECTED: serving %s:%d without authentication; anyone who can reach this address can read, "
        "change and stop every study. Set PBT_AUTH_TOKEN (or --require-token with stored tokens) to require "
        "a token, or bind to loopback only (--host 127.0.0.1, the default).",
        settings.host, port,
    )  # fmt: skip


def create_server(
    settings: ServerSettings,
    storage: Storage | None = None,
    clock: Callable[[], datetime] | None = None,
    *,
    warm_up_in_background: bool = True,
) -> RunningServer:
    """Builds and starts a server; the caller owns `stop()`. `warm_up_in_background=False`
    imports PB2's scikit-learn before starting instead: for a server inside a program that imports
    modules of its own meanwhile (`LocalService`), where two threads importing the same packages
    (plotly and scikit-learn both import narwhals) can deadlock in Python's import locks.

    Example:
        running = create_server(ServerSettings(database_url="sqlite:///pbt.db", port=0))
        print(running.port)
    """
    # scikit-learn's import takes seconds: done beside start-up, so the server is serving at once and
    # (unless a PB2 suggestion arrives within those seconds) the import never runs inside one.
    if warm_up_in_background:
        threading.Thread(target=pb2.warm_up, name="pb2-warm-up", daemon=True).start()
    else:
        pb2.warm_up()
    # A connection per RPC thread: a call never waits for the pool, only for the database.
    storage = storage or SqlStorage.from_url(
        settings.database_url, StorageSettings(pool_size=settings.max_workers, max_overflow=2)
    )
    health_servicer = health.HealthServicer()
    observability = Observability(
        storage, health_servicer, services=("", SERVICE_NAME), metrics_host=settings.metrics_host,
        metrics_port=settings.metrics_port, health_check_seconds=settings.health_check_seconds,
    )  # fmt: skip
    access = (
        [AccessInterceptor(storage, Authenticator(settings.auth_token))] if settings.tokens_required else []
    )
    # Every call's outcome counts for its client; a client whose calls are mostly refused waits for
    # the RPC threads behind everyone else (`pbt_service.fairness`).
    scores = ClientScores()
    executor = FairExecutor(settings.max_workers, scores)
    interceptors: list[grpc.ServerInterceptor] = [
        observability.interceptor(), ScoringInterceptor(scores), *access, DecodeGuard()
    ]
    server = grpc.server(
        executor,
        interceptors=interceptors,
        options=server_options(settings.limits),
        maximum_concurrent_rpcs=settings.limits.max_concurrent_rpcs,
    )
    pbt_service_pb2_grpc.add_PbtServiceServicer_to_server(
        PbtServicer(Controller(storage, settings.service, clock or utc_now, events=observability.events)), server
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, reflection.SERVICE_NAME, health.SERVICE_NAME), server)
    try:
        port = bind(server, settings.host, settings.port, settings.tls)
        _warn_if_exposed(settings, port)
        observability.start()
    except BaseException:
        executor.shutdown(wait=False)
        storage.close()
        raise
    server.start()
    for name in ("", SERVICE_NAME, LIVENESS):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, port, health_servicer, storage, observability, executor)


def serve(settings: ServerSettings) -> None:
    """Runs until SIGTERM or SIGINT, then shuts down gracefully. The handlers are installed before
    the port opens, so a signal that arrives as soon as the service answers is still graceful."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("signal %d: shutting down", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    running = create_server(settings)
    log.info("PBT service listening on %s:%d (database %s, tokens %s, %s)", settings.host, running.port,
             shown_url(settings.database_url), "required" if settings.tokens_required else "off",
             "mutual TLS" if settings.tls and settings.tls.client_ca else "TLS" if settings.tls else "plaintext")
    if running.metrics_port is not None:
        log.info("Prometheus metrics on http://%s:%d/metrics", settings.metrics_host, running.metrics_port)
    stopping.wait()
    running.stop(settings.grace_seconds)
