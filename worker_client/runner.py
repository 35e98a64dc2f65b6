"""Runs workers the way `pbt-worker` and `Job.main` do: persistent identities, signals, limits,
logs and progress lines, and an exit code.

Exit codes: 0 when the study is done, a limit is reached or a signal stopped the workers; 1 when
a worker could not go on (the service stayed unreachable past the retry window); 2 for bad
input found before any trial is taken (unknown study, template, module or worker name).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from pbt_service.core.types import StudyConfig
from worker_client.client import PbtClient
from worker_client.context import CHECKPOINT_PATTERN, Evaluator, Trainer
from worker_client.garbage_collection import roots_problem
from worker_client.identity import IdentityInUse, WorkerIdentity
from worker_client.pool import Member, WorkerPool
from worker_client.progress import ProgressPrinter
from worker_client.settings import ClientSettings

log = logging.getLogger("worker_client.runner")
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """Bad input found before any trial is taken; the message is shown as is, exit code 2."""


@dataclass(frozen=True)
class WorkerSettings:
    """Everything `pbt-worker` parses from its command line, once."""

    client: ClientSettings
    study: str
    workdir: Path = Path("pbt_runs")
    workers: int = 1
    worker_name: str | None = None
    max_trials: int | None = None
    max_time_seconds: float | None = None
    grace_seconds: float = 10.0
    heartbeat_seconds: float = 30.0
    poll_seconds: float = 0.05
    settle_seconds: float = 0.0
    keep_checkpoints: int | None = None
    collect_checkpoints: bool = False
    checkpoint_pattern: re.Pattern[str] = CHECKPOINT_PATTERN
    quiet: bool = False


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
        print(f"pbt-worker: {settings.client.address}: {error.code().name}: {error.details()}", file=sys.stderr)
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
        pool = WorkerPool(
            settings.client, settings.study, trainer, evaluator,
            [Member(i.worker_id, i.name) for i in identities], workdir=settings.workdir,
            grace_seconds=settings.grace_seconds, heartbeat_seconds=settings.heartbeat_seconds,
            poll_seconds=settings.poll_seconds, settle_seconds=settings.settle_seconds,
            keep_checkpoints=settings.keep_checkpoints, checkpoint_pattern=settings.checkpoint_pattern,
            collect_checkpoints=settings.collect_checkpoints,
            progress=None if settings.quiet else ProgressPrinter(),
        )
        result = pool.run(max_trials=settings.max_trials, max_seconds=settings.max_time_seconds,
                          handle_signals=True)
    finally:
        for identity in identities:
            identity.release()
    log.info("%s", result.summary())
    return EXIT_ERROR if result.errors else EXIT_OK


def _prepare(
    settings: WorkerSettings, components: Components, study_config: StudyConfig | None
) -> tuple[Trainer, Evaluator]:
    with PbtClient(settings.client) as client:
        try:
            if study_config is not None:
                client.create_study(settings.study, study_config, exist_ok=True)
            study = client.get_study(settings.study)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise UsageError(
                    f"study {settings.study!r} does not exist at {settings.client.address}; "
                    "create it first (e.g. with --create-study FILE)"
                ) from None
            if error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED,
                                grpc.StatusCode.PERMISSION_DENIED):
                raise UsageError(f"the service refused: {error.details()}") from None
            raise
    problem = roots_problem(
        settings.workdir, settings.study, study.config.checkpoints.roots, collect=settings.collect_checkpoints
    )
    if problem:
        raise UsageError(problem)
    try:
        return components(study.config)
    except ValueError as error:
        raise UsageError(str(error)) from None
