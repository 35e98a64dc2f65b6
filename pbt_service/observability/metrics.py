"""The server's Prometheus metrics, in a registry of its own.

One `CollectorRegistry` per server, not prometheus_client's global one: several servers in one
process (the tests, `LocalService`) each count only their own calls. Names and labels are listed in
docs/operations.md. Label values come from the server's own vocabulary (method names of the
service, status code names, studies that exist), never from arbitrary request text, so a client
cannot blow up the number of series.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from pbt_service.core.errors import UnavailableError
from pbt_service.core.types import TrialStatus
from pbt_service.store.base import Storage
from pbt_service.store.errors import DatabaseConfigError

__all__ = ["SCRAPE_TIMEOUT_S", "DatabaseCollector", "Metrics"]

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 2.0
"""How long a scrape waits for the trial counts before answering without them."""
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""RPC durations: most calls take a few milliseconds; a database in trouble takes seconds."""


class Metrics:
    """Every metric of one server; the methods are what the rest of the package records."""

    def __init__(self, storage: Storage) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.database = DatabaseCollector(storage)
        r.register(self.database)
        self.rpc_requests = Counter(
            "pbt_rpc_requests", "RPCs answered, by method and gRPC status code", ["method", "code"], registry=r
        )
        self.rpc_duration = Histogram(
            "pbt_rpc_duration_seconds", "Time to answer an RPC, by method and gRPC status code",
            ["method", "code"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.suggestions_waiting = Gauge(
            "pbt_suggestions_waiting", "GetNewSuggestion calls in flight: workers waiting for an answer", registry=r
        )
        self.suggestion_waits = Counter(
            "pbt_suggestion_waits", "GetNewSuggestion answers telling the worker to ask again later "
            "(no trial for it, the study not done)", ["study"], registry=r,
        )  # fmt: skip
        self.database_errors = Counter(
            "pbt_database_errors", "Database errors that failed a call: unavailable (gave up after retries) "
            "or config (refused for good: URL, credentials, schema)", ["kind"], registry=r,
        )  # fmt: skip
        self.database_retries = Counter(
            "pbt_database_retries", "Transactions redone after a transient database error", registry=r
        )
        self.lease_expiries = Counter(
            "pbt_lease_expiries", "Trials stopped because their worker's lease lapsed", ["study"], registry=r
        )

    def rpc_done(self, method: str, code: str, seconds: float) -> None:
        self.rpc_requests.labels(method, code).inc()
        self.rpc_duration.labels(method, code).observe(seconds)

    # --- `ControllerEvents` (pbt_service.controller.controller) ---
    def leases_expired(self, study: str, trial_ids: Sequence[int]) -> None:
        self.lease_expiries.labels(study).inc(len(trial_ids))

    def suggestion_wait(self, study: str) -> None:
        self.suggestion_waits.labels(study).inc()

    def database_failed(self, error: Exception) -> None:
        kind = "config" if isinstance(error, DatabaseConfigError) else "unavailable"
        self.database_errors.labels(kind).inc()

    # --- `RetryListener` (pbt_service.store.sql_storage) ---
    def transaction_retried(self, error: UnavailableError) -> None:
        self.database_retries.inc()


class DatabaseCollector(Collector):
    """`pbt_trials{study,state}` and `pbt_database_up`, computed at scrape time.

    The trial counts are one grouped read, so they are right across replicas sharing the database
    and cost nothing between scrapes. Every state of a study with trials is reported, zeros
    included, so a series does not vanish when it empties. `pbt_database_up` is 1 when the health
    monitor's last probe and this scrape's read both reached the database: a scrape never reports
    a database up that it just failed to read. When the read fails the scrape still answers, with
    every other metric and without `pbt_trials`."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._lock = threading.Lock()
        self.probe_up = True
        """Set by the health monitor after each probe."""

    def describe(self) -> Iterator[Metric]:
        return iter(())  # no read at registration; the family is known only at scrape time

    def collect(self) -> Iterator[Metric]:
        with self._lock:  # concurrent scrapes: one read at a time
            try:
                counts = self._storage.run(lambda tx: tx.trial_counts(), timeout_s=SCRAPE_TIMEOUT_S)
            except Exception as error:  # noqa: BLE001 - a scrape must answer whatever the database does
                log.warning("metrics: cannot read trial counts: %s", error)
                counts = None
        up = GaugeMetricFamily("pbt_database_up", "1 when the last health probe and this scrape reached "
                               "the database, else 0")  # fmt: skip
        up.add_metric([], 1 if self.probe_up and counts is not None else 0)
        yield up
        if counts is None:
            return
        family = GaugeMetricFamily("pbt_trials", "Trials by study and state", labels=["study", "state"])
        by_study: dict[str, dict[str, int]] = {}
        for study, status, count in counts:
            by_study.setdefault(study, {s.value: 0 for s in TrialStatus})[status.value] = count
        for study, states in sorted(by_study.items()):
            for state, count in states.items():
                family.add_metric([study, state], count)
        yield family
