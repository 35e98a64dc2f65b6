"""The database health monitor: gRPC health follows whether the database answers.

A load balancer or Kubernetes probe (`grpc_health_probe`) then takes a replica whose database is
unreachable out of rotation instead of sending it calls that can only fail with UNAVAILABLE, and
puts it back once the database answers. The probe is one cheap read (`list_studies(limit=1)`)
through `Storage.run`, the same path calls take: it works on SQLite and PostgreSQL alike, and on
SQLite it really reads the file (`SELECT 1` would not).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from grpc_health.v1 import health, health_pb2

from pbt_service.store.base import Storage

__all__ = ["HealthMonitor"]

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
PROBE_TIMEOUT_S = 2.0
"""A probe gives up after this long (or the interval, if shorter): a database this slow is down."""


class HealthMonitor:
    """Probes the database every `interval_s` seconds on a daemon thread and sets every name of
    `services` NOT_SERVING while the probe fails, SERVING again once it succeeds; `on_probe(ok)` is
    told each result (the `pbt_database_up` metric).

    Never turns a server that is shutting down back to SERVING: `stop()` is called after
    `HealthServicer.enter_graceful_shutdown()`, which makes the servicer ignore any later `set`,
    and a stopped monitor sets nothing (the check and the set share a lock with `stop`)."""

    def __init__(
        self,
        storage: Storage,
        health_servicer: health.HealthServicer,
        services: Sequence[str],
        interval_s: float,
        on_probe: Callable[[bool], None] = lambda ok: None,
    ) -> None:
        self._storage = storage
        self._health = health_servicer
        self._services = tuple(services)
        self._interval_s = interval_s
        self._on_probe = on_probe
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._up = True
        self._thread = threading.Thread(target=self._loop, name="pbt-health-monitor", daemon=True)

    @property
    def database_up(self) -> bool:
        return self._up

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ends the thread promptly: at most one probe in progress is waited for."""
        with self._lock:
            self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=PROBE_TIMEOUT_S + 5)

    def probe(self) -> bool:
        """One probe, its result applied; True when the database answered."""
        timeout = min(PROBE_TIMEOUT_S, self._interval_s)
        try:
            self._storage.run(lambda tx: tx.list_studies(limit=1), timeout_s=timeout)
            ok = True
        except Exception as error:  # noqa: BLE001 - any failure to read means: not serving
            ok = False
            if self._up:
                log.warning("database unreachable, health NOT_SERVING: %s", error)
        self._apply(ok)
        return ok

    def _apply(self, ok: bool) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            if ok and not self._up:
                log.warning("database reachable again, health SERVING")
            changed = ok != self._up
            self._up = ok
            self._on_probe(ok)
            # NOT_SERVING is set again at every failed probe: the server sets SERVING once after
            # start, which must not hide an outage that began before.
            if changed or not ok:
                for name in self._services:
                    self._health.set(name, SERVING if ok else NOT_SERVING)

    def _loop(self) -> None:
        while not self._stopping.wait(self._interval_s):
            try:
                self.probe()
            except Exception:  # noqa: BLE001 - the monitor must outlive any surprise
                log.exception("health probe failed unexpectedly")
