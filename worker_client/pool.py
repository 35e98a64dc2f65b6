"""Several workers in threads of one process, each with its own channel as separate processes
would have: the one runner behind `pbt-worker`, `Job.main` and `run_workers`.

Stopping: `WorkerPool.shutdown` (or SIGTERM/SIGINT, when the pool handles signals) asks every
worker to stop its trial, which is handed back to the service. A trainer that ignores
`ctx.should_stop()` past the grace period has its trial stopped from here; the pool then returns
and leaves that thread behind (threads are daemons), so the caller decides whether the process
exits. The library never ends the process itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc

from pbt_service.core.types import TrialStatus
from worker_client.client import PbtClient
from worker_client.context import Evaluator, Trainer
from worker_client.settings import ClientSettings
from worker_client.signals import stop_on_signals
from worker_client.worker import Worker, default_worker_id

log = logging.getLogger("worker_client.pool")
ABANDON_RETRY_SECONDS = 5.0
"""How long stopping an abandoned trial may retry an unreachable service."""


@dataclass(frozen=True)
class Member:
    """One worker of the pool: its id at the service and its name in the logs."""

    worker_id: str
    name: str


@dataclass(frozen=True)
class PoolResult:
    """What the workers did. `errors`: what stopped a worker (the service stayed unreachable, a
    bug); `abandoned`: trials whose trainer ignored the stop request and were stopped from here."""

    trials: int
    counts: dict[TrialStatus, int]
    errors: tuple[BaseException, ...]
    abandoned: tuple[int, ...]

    def summary(self) -> str:
        parts = [f"{self.counts[s]} {s.value}" for s in TrialStatus if self.counts.get(s)]
        return f"{sum(self.counts.values())} trial(s) ran: {', '.join(parts) or 'none'}"


class WorkerPool:
    """Runs one `Worker` per member until the study is done, a limit is reached or `shutdown()`.

    Example:
        members = [Member(f"{default_worker_id()}-w{i}", f"w{i}") for i in range(4)]
        result = WorkerPool(ClientSettings("localhost:50051"), "demo", train, evaluate, members,
                            workdir=Path("runs")).run()
    """

    def __init__(
        self,
        client: ClientSettings,
        study: str,
        trainer: Trainer,
        evaluator: Evaluator,
        members: Sequence[Member],
        *,
        workdir: Path,
        grace_seconds: float = 10.0,
        **worker_options: Any,
    ) -> None:
        self.settings = client
        self.study = study
        self.workdir = Path(workdir)
        self.grace_seconds = grace_seconds
        self._clients = [PbtClient(client) for _ in members]
        self.workers = [
            Worker(c, study, trainer, evaluator, worker_id=m.worker_id, name=m.name, workdir=self.workdir,
                   **worker_options)
            for c, m in zip(self._clients, members, strict=True)
        ]
        self._stopping = threading.Event()
        self._errors: list[BaseException] = []

    def shutdown(self, reason: str = "worker shut down") -> None:
        """Stops every worker's trial (handed back); after `grace_seconds` a trial whose trainer
        did not return is stopped from here and `run` returns."""
        self._stopping.set()
        for worker in self.workers:
            worker.shutdown(reason)

    def run(
        self, *, max_trials: int | None = None, max_seconds: float | None = None, handle_signals: bool = False
    ) -> PoolResult:
        """Runs the workers (limits are per worker) and returns what they did. With
        `handle_signals`, SIGTERM and SIGINT call `shutdown` (only from the main thread)."""
        for worker in self.workers:
            log.info("[%s] worker id %s, study %s at %s, model directories under %s", worker.name,
                     worker.worker_id, self.study, self.settings.address, self.workdir / self.study)
        restore = (
            stop_on_signals(self.shutdown, who="worker", doing="stopping the running trial(s) and exiting")
            if handle_signals
            else (lambda: None)
        )
        threads = [
            threading.Thread(target=self._work, args=(w, max_trials, max_seconds), name=f"pbt-{w.name}",
                             daemon=True)
            for w in self.workers
        ]
        try:
            for thread in threads:
                thread.start()
            abandoned = self._join(threads)
        finally:
            restore()
            for client in self._clients:
                client.close()
        counts: Counter[TrialStatus] = Counter()
        for worker in self.workers:
            counts.update(worker.counts)
        return PoolResult(sum(counts.values()), dict(counts), tuple(self._errors), abandoned)

    def _work(self, worker: Worker, max_trials: int | None, max_seconds: float | None) -> None:
        try:
            worker.run(max_trials=max_trials, max_seconds=max_seconds)
        except BaseException as error:  # noqa: BLE001 - reported by the pool's caller
            log.error("[%s] stopped by an error: %r", worker.name, error)
            self._errors.append(error)

    def _join(self, threads: list[threading.Thread]) -> tuple[int, ...]:
        give_up: float | None = None
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(timeout=0.1)
            if self._stopping.is_set() and give_up is None:
                give_up = time.monotonic() + self.grace_seconds + 2.0
            if give_up is not None and time.monotonic() > give_up:
                return self._abandon()
        return ()

    def _abandon(self) -> tuple[int, ...]:
        """Stops, from here, the trials whose trainer ignored the stop request."""
        stopped: list[int] = []
        with PbtClient(replace(self.settings, retry_seconds=ABANDON_RETRY_SECONDS)) as client:
            for worker in self.workers:
                trial_id = worker.current_trial_id
                if trial_id is None:
                    continue
                log.warning("[%s] trial %s ignored the stop request; stopping it and leaving it behind",
                            worker.name, trial_id)
                try:
                    client.stop_trial(trial_id, worker.stop_reason, worker.worker_id)
                    stopped.append(trial_id)
                except grpc.RpcError as error:
                    log.error("[%s] could not stop trial %s: %s", worker.name, trial_id, error.details())
        return tuple(stopped)

def run_workers(
    service: str | ClientSettings,
    study: str,
    trainer: Trainer,
    evaluator: Evaluator,
    num_workers: int,
    workdir: Path,
    **worker_options: Any,
) -> int:
    """Runs `num_workers` workers in threads of this process until the study is done; returns the
    number of trials they ran. `service` is an address or `ClientSettings` (token, TLS, deadlines).
    Raises the first error that stopped a worker.

    Example:
        run_workers("localhost:50051", "demo", train, evaluate, num_workers=4, workdir=Path("runs"))
    """
    settings = service if isinstance(service, ClientSettings) else ClientSettings(address=service)
    members = [Member(f"{default_worker_id()}-w{i}", f"w{i}") for i in range(num_workers)]
    result = WorkerPool(settings, study, trainer, evaluator, members, workdir=workdir, **worker_options).run()
    if result.errors:
        raise result.errors[0]
    return result.trials
