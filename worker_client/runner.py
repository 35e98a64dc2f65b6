"""Runs workers the way `pbt-worker` and `Job.main` do: persistent identities, signals, limits,
logs and progress lines, and an exit code.

Exit codes: 0 when the study is done, a limit is reached or a signal stopped the workers; 1 when
a worker could not go on (the service stayed unreachable past `service_retry_seconds`); 2 for bad
input found before any trial is taken (unknown study, template, module or worker name).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import grpc

from pbt_service.core.types import StudyConfig, TrialStatus
from worker_client.client import PbtClient
from worker_client.context import CHECKPOINT_PATTERN, Evaluator, Trainer
from worker_client.identity import IdentityInUse, WorkerIdentity
from worker_client.progress import ProgressPrinter
from worker_client.worker import Worker

log = logging.getLogger("worker_client.runner")
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """Bad input found before any trial is taken; the message is shown as is, exit code 2."""


@dataclass(frozen=True)
class WorkerSettings:
    """Everything `pbt-worker` parses from its command line, once."""

    service: str
    study: str
    workdir: Path = Path("pbt_runs")
    workers: int = 1
    worker_name: str | None = None
    max_trials: int | None = None
    max_time_seconds: float | None = None
    service_retry_seconds: float = 300.0
    rpc_timeout_seconds: float = 30.0
    grace_seconds: float = 10.0
    heartbeat_seconds: float = 30.0
    poll_seconds: float = 0.05
    settle_seconds: float = 0.0
    keep_checkpoints: int | None = None
    checkpoint_pattern: re.Pattern[str] = CHECKPOINT_PATTERN
    quiet: bool = False
    token: str | None = None


Components = Callable[[StudyConfig], tuple[Trainer, Evaluator]]
"""Builds the trainer and evaluator once the study's config is known (templates are checked
against its search space here); raises ValueError for bad input."""


def configure_logging(quiet: bool, level: str | None = None) -> None:
    logging.basicConfig(
        level=level or ("WARNING" if quiet else "INFO"),
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def run(settings: WorkerSettings, components: Components, study_config: StudyConfig | None = None) -> int:
    """Checks the study and the user's code, then runs `settings.workers` workers until done."""
    try:
        trainer, evaluator = _prepare(settings, components, study_config)
    except UsageError as error:
        print(f"pbt-worker: {error}", file=sys.stderr)
        return EXIT_USAGE
    except grpc.RpcError as error:
        print(f"pbt-worker: {settings.service}: {error.code().name}: {error.details()}", file=sys.stderr)
        return EXIT_ERROR
    identities: list[WorkerIdentity] = []
    try:
        for index in range(settings.workers):
            name = settings.worker_name
            if name is not None and settings.workers > 1:
                name = f"{name}-{index}"
            identities.append(WorkerIdentity.acquire(settings.workdir, name))
    except (IdentityInUse, ValueError) as error:
        for identity in identities:
            identity.release()
        print(f"pbt-worker: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _run_workers(settings, trainer, evaluator, identities)
    finally:
        for identity in identities:
            identity.release()


def _client(settings: WorkerSettings) -> PbtClient:
    return PbtClient(
        settings.service, timeout_seconds=settings.rpc_timeout_seconds,
        retry_seconds=settings.service_retry_seconds, token=settings.token,
    )


def _prepare(
    settings: WorkerSettings, components: Components, study_config: StudyConfig | None
) -> tuple[Trainer, Evaluator]:
    with _client(settings) as client:
        try:
            if study_config is not None:
                client.create_study(settings.study, study_config, exist_ok=True)
            study = client.get_study(settings.study)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise UsageError(
                    f"study {settings.study!r} does not exist at {settings.service}; "
                    "create it first (e.g. with --create-study FILE)"
                ) from None
            if error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED):
                raise UsageError(f"the service refused: {error.details()}") from None
            raise
    try:
        return components(study.config)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _run_workers(
    settings: WorkerSettings, trainer: Trainer, evaluator: Evaluator, identities: list[WorkerIdentity]
) -> int:
    progress = None if settings.quiet else ProgressPrinter()
    clients = [_client(settings) for _ in identities]
    workers = [
        Worker(
            client, settings.study, trainer, evaluator,
            worker_id=identity.worker_id, name=identity.name, workdir=settings.workdir,
            heartbeat_seconds=settings.heartbeat_seconds, poll_seconds=settings.poll_seconds,
            settle_seconds=settings.settle_seconds, keep_checkpoints=settings.keep_checkpoints,
            checkpoint_pattern=settings.checkpoint_pattern, progress=progress,
        )
        for client, identity in zip(clients, identities, strict=True)
    ]
    errors: list[BaseException] = []

    def work(worker: Worker) -> None:
        try:
            worker.run(max_trials=settings.max_trials, max_seconds=settings.max_time_seconds)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            log.error("[%s] stopped by an error: %r", worker.name, error)
            errors.append(error)

    for worker in workers:
        log.info("[%s] worker id %s, study %s at %s, model directories under %s", worker.name,
                 worker.worker_id, settings.study, settings.service, settings.workdir / settings.study)
    signalled = threading.Event()
    restore = _install_signal_handlers(workers, signalled)
    threads = [threading.Thread(target=work, args=(w,), name=f"pbt-{w.name}") for w in workers]
    try:
        for thread in threads:
            thread.start()
        _join(threads, workers, signalled, settings)
    finally:
        restore()
        for client in clients:
            client.close()
    _summarize(workers)
    return EXIT_ERROR if errors else EXIT_OK


def _join(threads: list[threading.Thread], workers: list[Worker], signalled: threading.Event,
          settings: WorkerSettings) -> None:
    """Waits for the workers. After a signal, a Python trainer that ignores `should_stop()` gets
    the grace period; then its trial is stopped (handed back) from here and the process exits."""
    give_up: float | None = None
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(timeout=0.1)
        if signalled.is_set() and give_up is None:
            give_up = time.monotonic() + settings.grace_seconds + 2.0
        if give_up is not None and time.monotonic() > give_up:
            _abandon(workers, settings)


def _abandon(workers: list[Worker], settings: WorkerSettings) -> None:
    for worker in workers:
        trial_id = worker.current_trial_id
        if trial_id is None:
            continue
        log.warning("[%s] trial %s ignored the stop request; stopping it and exiting", worker.name, trial_id)
        try:
            with PbtClient(settings.service, retry_seconds=5.0, token=settings.token) as client:
                client.stop_trial(trial_id, worker.stop_reason, worker.worker_id)
        except grpc.RpcError as error:
            log.error("[%s] could not stop trial %s: %s", worker.name, trial_id, error.details())
    logging.shutdown()
    os._exit(EXIT_OK)


def _install_signal_handlers(workers: list[Worker], signalled: threading.Event) -> Callable[[], None]:
    """SIGTERM and SIGINT stop every worker's trial cleanly; a second signal kills at once."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        log.warning("received %s: stopping the running trial(s) and exiting (again to kill at once)", name)
        for s in previous:
            signal.signal(s, signal.SIG_DFL)
        signalled.set()
        for worker in workers:
            worker.shutdown(f"worker received {name}")

    for s in previous:
        signal.signal(s, on_signal)

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)

    return restore


def _summarize(workers: list[Worker]) -> None:
    total: Counter[TrialStatus] = Counter()
    for worker in workers:
        total.update(worker.counts)
    parts = [f"{total[s]} {s.value}" for s in TrialStatus if total[s]]
    log.info("%d trial(s) ran: %s", sum(total.values()), ", ".join(parts) or "none")
