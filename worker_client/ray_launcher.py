"""Workers as Ray actors: N workers of one study on a local Ray or an existing Ray cluster, each
with the resources it needs (CPUs, GPUs, memory, custom resources), restarted where Ray restarts
it when its node dies.

Each worker is one actor running the ordinary worker loop (`WorkerPool` with one member). Its
worker id comes from a prefix and its index (`PREFIX-w0`, `PREFIX-w1`, ...), never from the
process, so an actor that Ray restarts asks the service under the same id and gets back the trial
it held (the service hands a worker its active trials first), retraining it from the trial's warm
start. Ray sets `CUDA_VISIBLE_DEVICES` for an actor with GPUs; the trainer runs in the actor's
process and sees it.

`ray` is imported only when a launcher starts: `import worker_client` never imports it
(`pip install 'pbt-service[ray]'`).

Example:
    result = run_on_ray(ClientSettings("pbt.example.com:50051", token=...), "demo",
                        "mypkg.job:train", "mypkg.job:evaluate", num_workers=8,
                        address="ray://head:10001", num_gpus=1, workdir=Path("/shared/runs"))
    print(result.summary())
"""

from __future__ import annotations

import inspect
import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc

from pbt_service.core.types import StudyConfig, TrialStatus
from worker_client.client import PbtClient
from worker_client.context import Evaluator, Trainer
from worker_client.garbage_collection import roots_problem
from worker_client.identity import NAME
from worker_client.loading import load_callable
from worker_client.pool import Member, WorkerPool
from worker_client.progress import ProgressPrinter
from worker_client.runner import UsageError, configure_logging
from worker_client.settings import ClientSettings

log = logging.getLogger("worker_client.ray")
INSTALL_HINT = "pip install 'pbt-service[ray]'"
SHUTDOWN_MARGIN_SECONDS = 5.0
"""After `grace_seconds`, how long a stopping actor may take to return before it is killed."""
RESTART_WAIT_SECONDS = 600.0
"""How long a lost actor may take to come back (Ray may wait for a node with the resources)."""
HELLO_RETRY_SECONDS = 0.2
RUN, HELLO = "run", "hello"

TrainerSpec = str | Trainer
"""`package.module:function` (imported on the worker) or the function itself."""
EvaluatorSpec = str | Evaluator


class RayMissing(ImportError):
    """Ray is not installed; the message says how to install it."""


def import_ray() -> Any:
    """The `ray` module, or RayMissing saying what to install."""
    try:
        import ray
    except ImportError as error:
        raise RayMissing(f"Ray is not installed ({error}): {INSTALL_HINT}") from None
    return ray


def default_prefix() -> str:
    """`ray-HOST`: stable across launches from one machine, so a relaunched launcher's workers get
    their trials back too. Two launchers of one study at once need different prefixes."""
    host = "".join(c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname()) or "host"
    return f"ray-{host}"[:48]


def worker_id_of(prefix: str, index: int) -> str:
    """The stable id of worker `index`."""
    return f"{prefix}-w{index}"


@dataclass(frozen=True)
class Attempt:
    """What one run of a worker actor did (an actor that Ray restarts runs again)."""

    counts: dict[str, int]
    errors: tuple[str, ...] = ()
    abandoned: tuple[int, ...] = ()
    usage_error: str | None = None
    node_id: str = ""
    pid: int = 0
    gpu_ids: tuple[str, ...] = ()
    cuda_visible_devices: str | None = None


class WorkerActor:
    """The body of one worker actor (made remote by the launcher, so this module needs no Ray).
    `run` and `shutdown` may run at once (the actor has two threads)."""

    def __init__(self, worker_id: str, name: str) -> None:
        self.worker_id = worker_id
        self.name = name
        self._lock = threading.Lock()
        self._pool: WorkerPool | None = None
        self._stop_reason: str | None = None
        self.incarnation = uuid.uuid4().hex
        """New in each process Ray starts for this actor: how the launcher tells a restart."""

    def hello(self) -> str:
        """This process's incarnation."""
        return self.incarnation

    def run(
        self,
        settings: ClientSettings,
        study: str,
        trainer: TrainerSpec,
        evaluator: EvaluatorSpec,
        workdir: str,
        worker_options: dict[str, Any],
        max_trials: int | None,
        max_seconds: float | None,
        log_level: str | None,
        progress: bool,
    ) -> Attempt:
        import ray

        configure_logging(False, log_level)
        context = ray.get_runtime_context()
        where = Attempt({}, node_id=context.get_node_id(), pid=os.getpid(),
                        gpu_ids=tuple(str(g) for g in ray.get_gpu_ids()),
                        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))
        try:
            train = _resolve(trainer, "trainer")
            evaluate = _resolve(evaluator, "evaluator")
            pool = WorkerPool(settings, study, train, evaluate, [Member(self.worker_id, self.name)],
                              workdir=Path(workdir), progress=ProgressPrinter() if progress else None,
                              **worker_options)
        except (ValueError, TypeError) as error:
            return replace(where, usage_error=str(error))
        with self._lock:
            self._pool = pool
            if self._stop_reason is not None:
                pool.shutdown(self._stop_reason)
        if where.cuda_visible_devices is not None:
            log.info("[%s] CUDA_VISIBLE_DEVICES=%s", self.name, where.cuda_visible_devices)
        result = pool.run(max_trials=max_trials, max_seconds=max_seconds)
        with self._lock:
            self._pool = None
        return replace(where, counts={s.value: n for s, n in result.counts.items()},
                       errors=tuple(repr(e) for e in result.errors), abandoned=result.abandoned)

    def shutdown(self, reason: str) -> None:
        """Stops the running trial (handed back to the service) and ends `run`."""
        with self._lock:
            self._stop_reason = reason
            if self._pool is not None:
                self._pool.shutdown(reason)


def _resolve(spec: object, what: str) -> Any:
    if isinstance(spec, str):
        return load_callable(spec, f"--{what}-module")
    if not callable(spec):
        raise TypeError(f"the {what} must be a callable or 'package.module:function', got {spec!r}")
    return spec


def _as_spec(function: object) -> object:
    """A module-level function becomes `module:name`, imported on the worker the way a name given
    on the command line is (the working directory importable); anything else travels pickled."""
    if inspect.isfunction(function) and function.__module__ != "__main__" and "<" not in function.__qualname__:
        return f"{function.__module__}:{function.__qualname__}"
    return function


@dataclass(frozen=True)
class RayWorkerResult:
    """One worker over all its runs: `restarts` counts the times its actor died and was started again."""

    index: int
    worker_id: str
    name: str
    counts: dict[TrialStatus, int]
    restarts: int
    errors: tuple[str, ...]
    abandoned: tuple[int, ...]
    nodes: tuple[str, ...]
    """The Ray node of each run, in order."""
    gpu_ids: tuple[str, ...]
    cuda_visible_devices: str | None
    usage_error: str | None = None
    """The worker could not start: its trainer or evaluator did not load (also in `errors`)."""

    @property
    def trials(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class RayRunResult:
    """What the workers did. `errors`: what stopped a worker for good (a bad trainer name, an
    unreachable service, an actor out of restarts), each prefixed with the worker's name."""

    workers: tuple[RayWorkerResult, ...]

    @property
    def trials(self) -> int:
        return sum(w.trials for w in self.workers)

    @property
    def restarts(self) -> int:
        return sum(w.restarts for w in self.workers)

    @property
    def counts(self) -> dict[TrialStatus, int]:
        total: Counter[TrialStatus] = Counter()
        for worker in self.workers:
            total.update(worker.counts)
        return dict(total)

    @property
    def errors(self) -> tuple[str, ...]:
        return tuple(f"[{w.name}] {e}" for w in self.workers for e in w.errors)

    def summary(self) -> str:
        parts = [f"{self.counts[s]} {s.value}" for s in TrialStatus if self.counts.get(s)]
        return (f"{self.trials} trial(s) ran on {len(self.workers)} Ray worker(s): {', '.join(parts) or 'none'}; "
                f"{self.restarts} restart(s), {len(self.errors)} error(s)")


@dataclass
class _Member:
    index: int
    worker_id: str
    name: str
    actor: Any = None
    incarnation: str | None = None
    """The actor process the launcher last heard from."""
    failed_runs: int = 0
    lost_since: float | None = None
    """When its run failed and the launcher started asking whether the actor is back."""
    restarts: int = 0
    done: int = 0
    usage_error: str | None = None
    counts: Counter[TrialStatus] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    abandoned: list[int] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    gpu_ids: tuple[str, ...] = ()
    cuda_visible_devices: str | None = None

    def add(self, attempt: Attempt) -> None:
        self.nodes.append(attempt.node_id)
        self.gpu_ids, self.cuda_visible_devices = attempt.gpu_ids, attempt.cuda_visible_devices
        for status, count in attempt.counts.items():
            self.counts[TrialStatus(status)] += count
            self.done += count
        self.errors.extend(attempt.errors)
        self.abandoned.extend(attempt.abandoned)
        if attempt.usage_error is not None:
            self.usage_error = attempt.usage_error
            self.errors.append(attempt.usage_error)

    def result(self) -> RayWorkerResult:
        return RayWorkerResult(self.index, self.worker_id, self.name, dict(self.counts), self.restarts,
                               tuple(self.errors), tuple(self.abandoned), tuple(self.nodes), self.gpu_ids,
                               self.cuda_visible_devices, self.usage_error)


class RayLauncher:
    """Starts `num_workers` worker actors, restarts the run of any whose actor dies, and collects
    what they did. `run()` does it all; `start()`, `members`, `wait()` and `shutdown()` are the
    steps, for a caller that watches or stops the workers (use it as a context manager so the
    actors, and a Ray it started, go away).

    `address`: None connects to the Ray that `RAY_ADDRESS` or a running local cluster names, else
    starts a local one; "local" always starts one; "auto" or `ray://HOST:10001` connects. A Ray
    already initialized in this process is used as it is. `resources` are Ray custom resources
    per worker, `memory` is bytes per worker. `max_restarts`: times each actor is restarted after
    its process or node dies (-1: always). `worker_options` go to each `Worker` (heartbeat_seconds,
    poll_seconds, keep_checkpoints, collect_checkpoints, ...)."""

    def __init__(
        self,
        settings: ClientSettings,
        study: str,
        trainer: TrainerSpec,
        evaluator: EvaluatorSpec,
        num_workers: int,
        *,
        workdir: Path,
        address: str | None = None,
        num_cpus: float = 1,
        num_gpus: float = 0,
        memory: int | None = None,
        resources: Mapping[str, float] | None = None,
        max_restarts: int = -1,
        worker_prefix: str | None = None,
        study_config: StudyConfig | None = None,
        max_trials: int | None = None,
        max_seconds: float | None = None,
        grace_seconds: float = 10.0,
        runtime_env: Mapping[str, Any] | None = None,
        actor_options: Mapping[str, Any] | None = None,
        ray_init_options: Mapping[str, Any] | None = None,
        log_level: str | None = None,
        **worker_options: Any,
    ) -> None:
        if num_workers < 1:
            raise ValueError(f"num_workers: must be >= 1, got {num_workers}")
        if num_cpus < 0 or num_gpus < 0:
            raise ValueError(f"num_cpus and num_gpus must be >= 0, got {num_cpus} and {num_gpus}")
        if max_restarts < -1:
            raise ValueError(f"max_restarts: -1 (always) or >= 0, got {max_restarts}")
        prefix = worker_prefix or default_prefix()
        if not NAME.match(worker_id_of(prefix, num_workers - 1)):
            raise ValueError(f"worker prefix {prefix!r}: use letters, digits, '.', '_', '-' (at most 58)")
        self.settings = settings
        self.study = study
        self.trainer = _as_spec(trainer)
        self.evaluator = _as_spec(evaluator)
        self.workdir = Path(workdir)
        self.address = address
        self.max_restarts = max_restarts
        self.study_config = study_config
        self.max_trials = max_trials
        self.max_seconds = max_seconds
        self.grace_seconds = grace_seconds
        self.log_level = log_level
        self.progress = bool(worker_options.pop("progress", None))
        """Progress lines from each worker (a ProgressPrinter holds a lock, so only the wish travels)."""
        self.worker_options = {"grace_seconds": grace_seconds, **worker_options}
        self.actor_options: dict[str, Any] = {
            "num_cpus": num_cpus, "num_gpus": num_gpus, "max_restarts": max_restarts, "max_concurrency": 2,
            **({"memory": memory} if memory is not None else {}),
            **({"resources": dict(resources)} if resources else {}),
            **({"runtime_env": dict(runtime_env)} if runtime_env else {}),
            **dict(actor_options or {}),
        }
        self.ray_init_options = dict(ray_init_options or {})
        self.members = [_Member(i, worker_id_of(prefix, i), f"w{i}") for i in range(num_workers)]
        self._ray: Any = None
        self._started_ray = False
        self._pending: dict[Any, tuple[_Member, str]] = {}
        """Calls in flight: ref -> (member, "hello" or "run")."""
        self._hello_at: list[tuple[float, _Member]] = []
        """Members whose actor is asked again, and when."""
        self._stopping = threading.Event()
        self._stop_reason = "launcher shut down"
        self._deadline: float | None = None

    @property
    def actors(self) -> list[Any]:
        """The workers' actor handles, by index (None before `start` and after `close`)."""
        return [m.actor for m in self.members]

    @property
    def worker_ids(self) -> list[str]:
        return [m.worker_id for m in self.members]

    # --- the steps ---

    def check_study(self) -> None:
        """Creates the study from `study_config` when given, and checks that it exists. Raises
        UsageError (unknown study, refused token, a collection without roots), grpc.RpcError."""
        with PbtClient(self.settings) as client:
            try:
                if self.study_config is not None:
                    client.create_study(self.study, self.study_config, exist_ok=True)
                study = client.get_study(self.study)
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    raise UsageError(f"study {self.study!r} does not exist at {self.settings.address}; "
                                     "create it first (e.g. with --create-study FILE)") from None
                if error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED):
                    raise UsageError(f"the service refused: {error.details()}") from None
                raise
        collect = bool(self.worker_options.get("collect_checkpoints", False))
        problem = roots_problem(self.workdir, self.study, study.config.checkpoints.roots, collect=collect)
        if problem:
            raise UsageError(problem)

    def start(self) -> None:
        """Connects to (or starts) Ray and starts the actors. Raises RayMissing without Ray."""
        ray = self._ray = import_ray()
        if not ray.is_initialized():
            options = {"address": self.address, "log_to_driver": True, **self.ray_init_options}
            ray.init(**options)
            self._started_ray = True
        if self.max_seconds is not None:
            self._deadline = time.monotonic() + self.max_seconds
        remote = ray.remote(WorkerActor)
        for member in self.members:
            member.actor = remote.options(**self.actor_options).remote(member.worker_id, member.name)
            self._hello(member)
            self._submit(member)
        log.info("started %d Ray worker(s) (%s) for study %s at %s: ids %s ... %s", len(self.members),
                 ", ".join(f"{k}={v}" for k, v in self.actor_options.items() if k != "max_concurrency"),
                 self.study, self.settings.address, self.members[0].worker_id, self.members[-1].worker_id)

    def wait(self, timeout: float | None = None) -> RayRunResult | None:
        """Waits for the workers; restarts the run of a worker whose actor died (Ray restarts the
        actor). Returns the result once every worker is done, or None after `timeout` seconds.
        After `shutdown`, a worker that does not return within the grace period is killed."""
        ray = self._ray
        give_up = None if timeout is None else time.monotonic() + timeout
        kill_at: float | None = None
        while self._pending or self._hello_at:
            now = time.monotonic()
            if self._stopping.is_set() and kill_at is None:
                kill_at = now + self.grace_seconds + SHUTDOWN_MARGIN_SECONDS
            if kill_at is not None and now > kill_at:
                for member in {id(m): m for m, kind in self._pending.values() if kind == RUN}.values():
                    member.errors.append(f"did not stop within {self.grace_seconds:g}s: killed")
                    ray.kill(member.actor, no_restart=True)
                self._pending.clear()
                self._hello_at.clear()
                break
            for due, member in [d for d in self._hello_at if d[0] <= now]:
                self._hello_at.remove((due, member))
                self._hello(member)
            if self._pending:
                ready, _ = ray.wait(list(self._pending), num_returns=1, timeout=0.2)
                for ref in ready:
                    member, kind = self._pending.pop(ref)
                    if kind == RUN:
                        self._collect_run(ref, member)
                    else:
                        self._collect_hello(ref, member)
            else:
                time.sleep(0.05)
            if give_up is not None and time.monotonic() > give_up and (self._pending or self._hello_at):
                return None
        return RayRunResult(tuple(m.result() for m in self.members))

    def shutdown(self, reason: str = "launcher shut down") -> None:
        """Asks every worker to stop: its running trial is handed back to the service."""
        self._stop_reason = reason
        self._stopping.set()
        for member in self.members:
            if member.actor is not None:
                member.actor.shutdown.remote(reason)

    def close(self) -> None:
        """Ends the actors (and Ray, when this launcher started it)."""
        ray = self._ray
        if ray is None or not ray.is_initialized():
            return
        for member in self.members:
            if member.actor is not None:
                ray.kill(member.actor, no_restart=True)
                member.actor = None
        self._pending.clear()
        self._hello_at.clear()
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    def run(self) -> RayRunResult:
        """check_study, start, wait until the study is done (or the limits), close. Ctrl-C stops
        the running trials cleanly (they are handed back) before returning."""
        self.check_study()
        try:
            self.start()
            try:
                result = self.wait()
            except KeyboardInterrupt:
                log.warning("interrupted: stopping the workers' trials (again to kill at once)")
                self.shutdown("launcher interrupted")
                result = self.wait()
            assert result is not None
            return result
        finally:
            self.close()

    def __enter__(self) -> RayLauncher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- inside ---

    def _submit(self, member: _Member) -> None:
        max_trials = None if self.max_trials is None else max(self.max_trials - member.done, 0)
        max_seconds = None
        if self._deadline is not None:
            max_seconds = max(self._deadline - time.monotonic(), 0.01)
        ref = member.actor.run.remote(self.settings, self.study, self.trainer, self.evaluator, str(self.workdir),
                                      self.worker_options, max_trials, max_seconds, self.log_level, self.progress)
        self._pending[ref] = (member, RUN)

    def _hello(self, member: _Member) -> None:
        self._pending[member.actor.hello.remote()] = (member, HELLO)

    def _collect_run(self, ref: Any, member: _Member) -> None:
        ray = self._ray
        try:
            attempt: Attempt = ray.get(ref)
        except ray.exceptions.RayActorError as error:
            if self._stopping.is_set():
                return
            # The actor's process died (or is unreachable): ask it until an answer says which
            # process it is now. A new one is a restart; the old one was a passing outage.
            member.failed_runs += 1
            member.lost_since = time.monotonic()
            log.warning("[%s] its actor was lost (%s); waiting for Ray to restart it", member.name,
                        type(error).__name__)
            self._hello(member)
        except ray.exceptions.RayError as error:
            member.errors.append(_first_line(error))
            log.error("[%s] stopped by an error: %s", member.name, member.errors[-1])
        else:
            member.add(attempt)
            if attempt.usage_error is not None:
                log.error("[%s] %s", member.name, attempt.usage_error)

    def _collect_hello(self, ref: Any, member: _Member) -> None:
        ray = self._ray
        lost = member.lost_since is not None
        try:
            incarnation: str = ray.get(ref)
        except ray.exceptions.RayActorError as error:
            out_of_restarts = self.max_restarts != -1 and member.restarts >= self.max_restarts
            if not lost or self._stopping.is_set():
                return  # the first hello of an actor lost at once: its run's failure says so
            assert member.lost_since is not None
            waited = time.monotonic() - member.lost_since
            if error.actor_init_failed or (out_of_restarts and isinstance(error, ray.exceptions.ActorDiedError)) \
                    or waited > RESTART_WAIT_SECONDS:
                why = ("out of restarts" if out_of_restarts and not error.actor_init_failed
                       else f"not back after {waited:.0f}s" if waited > RESTART_WAIT_SECONDS else "it cannot start")
                member.errors.append(f"its actor died ({why}): {_first_line(error)}")
                member.lost_since = None
                log.error("[%s] %s", member.name, member.errors[-1])
                return
            self._hello_at.append((time.monotonic() + HELLO_RETRY_SECONDS, member))
            return
        if member.incarnation is not None and incarnation != member.incarnation or (
                member.incarnation is None and member.failed_runs > 0):
            member.restarts += 1
            log.warning("[%s] its actor was restarted (restart %d): it asks for its trial again as %s",
                        member.name, member.restarts, member.worker_id)
        member.incarnation = incarnation
        if lost and not self._stopping.is_set():
            member.lost_since = None
            self._submit(member)


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}".strip()


def run_on_ray(
    settings: ClientSettings | str,
    study: str,
    trainer: TrainerSpec,
    evaluator: EvaluatorSpec,
    num_workers: int,
    *,
    workdir: Path,
    address: str | None = None,
    num_cpus: float = 1,
    num_gpus: float = 0,
    resources: Mapping[str, float] | None = None,
    max_restarts: int = -1,
    worker_prefix: str | None = None,
    **options: Any,
) -> RayRunResult:
    """Runs `num_workers` workers of `study` as Ray actors until the study is done (or the limits
    `max_trials` per worker, `max_seconds`) and returns what they did. `settings`: the service's
    address or `ClientSettings` (token, TLS). Other options: those of `RayLauncher` (memory,
    study_config, runtime_env, actor_options, ray_init_options, ...) and of `Worker`. Raises
    UsageError for an unknown study, RayMissing without Ray.

    Example:
        run_on_ray("localhost:50051", "demo", "examples.toy.problem:train",
                   "examples.toy.problem:evaluate", num_workers=2, workdir=Path("runs"))
    """
    client = settings if isinstance(settings, ClientSettings) else ClientSettings(address=settings)
    return RayLauncher(client, study, trainer, evaluator, num_workers, workdir=workdir, address=address,
                       num_cpus=num_cpus, num_gpus=num_gpus, resources=resources, max_restarts=max_restarts,
                       worker_prefix=worker_prefix, **options).run()

