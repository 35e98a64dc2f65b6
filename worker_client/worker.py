"""A worker = a trainer + an evaluator (paper section 3.6).

The worker asks for a trial, gives the trainer the hparams, the warm-start checkpoint and a fresh
model directory, and evaluates each checkpoint the trainer writes in a second thread (continuous
evaluation), reporting its metrics with the checkpoint's path. When the trainer returns and the
final checkpoint is evaluated, the trial is completed and the worker asks again.

What the user's code does wrong ends the trial, not the worker: a trainer that raises or exits
non-zero, writes no checkpoint, or an evaluator that returns no numbers all mark the trial FAILED
with a message that says so. A shut-down worker stops its trial (StopTrial), which hands the
reproduction back to the service for another worker.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import grpc

from pbt_service.core.types import Measurement, StudyConfig, Trial, TrialStatus
from worker_client.client import PbtClient
from worker_client.context import CHECKPOINT_PATTERN, Evaluator, Trainer, TrialContext, TrialFailure
from worker_client.evaluation import ContinuousEvaluation, Heartbeat
from worker_client.garbage_collection import DELETED, NoRootsError, collect_garbage, roots_problem
from worker_client.progress import ProgressPrinter
from worker_client.results import format_value

log = logging.getLogger(__name__)
LOST = (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND)

__all__ = ["TrialFailure", "Worker", "default_worker_id"]


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _lost(error: BaseException | None) -> bool:
    """The service no longer lets this worker report on the trial (lease expired, stopped)."""
    return isinstance(error, grpc.RpcError) and error.code() in LOST


class Worker:
    """Runs trials of one study until it is done (or a limit is reached).

    Example:
        worker = Worker(PbtClient("localhost:50051"), "demo", train, evaluate, workdir=Path("runs"))
        worker.run(max_trials=10)
    """

    def __init__(
        self,
        client: PbtClient,
        study: str,
        trainer: Trainer,
        evaluator: Evaluator,
        *,
        worker_id: str | None = None,
        name: str | None = None,
        workdir: Path = Path("pbt_runs"),
        heartbeat_seconds: float = 30.0,
        poll_seconds: float = 0.05,
        settle_seconds: float = 0.0,
        keep_checkpoints: int | None = None,
        checkpoint_pattern: re.Pattern[str] = CHECKPOINT_PATTERN,
        progress: ProgressPrinter | None = None,
        on_measurement: Callable[[Trial, Measurement], None] | None = None,
        on_trial_end: Callable[[Trial], None] | None = None,
        collect_checkpoints: bool = False,
    ) -> None:
        """`collect_checkpoints`: after each trial, delete the study's checkpoints that no trial
        can need any more (the study must declare checkpoint roots; see `garbage_collection`)."""
        self.client = client
        self.study = study
        self.trainer = trainer
        self.evaluator = evaluator
        self.worker_id = worker_id or default_worker_id()
        self.name = name or self.worker_id
        self.workdir = Path(workdir)
        self.heartbeat_seconds = heartbeat_seconds
        self.poll_seconds = poll_seconds
        self.settle_seconds = settle_seconds
        self.keep_checkpoints = keep_checkpoints
        self.checkpoint_pattern = checkpoint_pattern
        self.progress = progress
        self.collect_checkpoints = collect_checkpoints
        self.counts: Counter[TrialStatus] = Counter()
        self._on_measurement = on_measurement
        self._on_trial_end = on_trial_end
        self._shutdown = threading.Event()
        self._stop_reason = "worker shut down"
        self._lock = threading.Lock()
        self._current: TrialContext | None = None
        self._config: StudyConfig | None = None

    def on_measurement(self, trial: Trial, measurement: Measurement) -> None:
        if self.progress is not None:
            self.progress.measured(self.name, trial, measurement, self._objectives())
        if self._on_measurement is not None:
            self._on_measurement(trial, measurement)

    @property
    def shutting_down(self) -> bool:
        return self._shutdown.is_set()

    @property
    def stop_reason(self) -> str:
        return self._stop_reason

    @property
    def current_trial_id(self) -> int | None:
        current = self._current
        return current.trial_id if current is not None else None

    def shutdown(self, reason: str = "worker shut down") -> None:
        """Asks the worker to stop: the running trial is told to stop and is handed back."""
        with self._lock:
            if not self._shutdown.is_set():
                self._stop_reason = reason
            self._shutdown.set()
            if self._current is not None:
                self._current.stop_signal.request(self._stop_reason)

    def run(self, max_trials: int | None = None, max_seconds: float | None = None) -> int:
        """Runs trials until the study is done, `max_trials` ran, `max_seconds` passed or
        `shutdown()` was called; returns the number of trials run. When `max_seconds` passes
        mid-trial, that trial is stopped and handed back, as on shutdown."""
        timer = None
        if max_seconds is not None:
            reason = f"time limit ({max_seconds:g}s)"
            timer = threading.Timer(max_seconds, self.shutdown, kwargs={"reason": reason})
            timer.daemon = True
            timer.start()
        done, paused = 0, False
        self._check_roots()
        try:
            while not self._shutdown.is_set():
                if max_trials is not None and done >= max_trials:
                    log.info("[%s] ran %d trial(s), the limit", self.name, done)
                    break
                suggestion = self.client.get_new_suggestion(self.study, self.worker_id)
                if suggestion.study_done:
                    log.info("[%s] study %s is done", self.name, self.study)
                    break
                if suggestion.study_paused != paused:
                    paused = suggestion.study_paused
                    log.info("[%s] study %s is %s", self.name, self.study, "paused: waiting" if paused else "resumed")
                if not suggestion.trials:
                    self._shutdown.wait(max(suggestion.retry_after_seconds, 0.01))
                    continue
                for trial in suggestion.trials:
                    if self._shutdown.is_set():  # hand the rest back untouched
                        self.client.stop_trial(trial.id, self._stop_reason, self.worker_id)
                        continue
                    self.run_trial(trial)
                    done += 1
                    self._collect()
        finally:
            if timer is not None:
                timer.cancel()
        if self._shutdown.is_set():
            log.info("[%s] stopped: %s", self.name, self._stop_reason)
        return done

    def _check_roots(self) -> None:
        """Fails fast, before any trial (see `garbage_collection.roots_problem`)."""
        roots = self._config_once().checkpoints.roots
        problem = roots_problem(self.workdir, self.study, roots, collect=self.collect_checkpoints)
        if problem:
            raise NoRootsError(problem)

    def _collect(self) -> None:
        """Opt-in collection after a trial; a failure is logged and training goes on."""
        if not self.collect_checkpoints:
            return
        try:
            report = collect_garbage(self.client, self.study)
        except (grpc.RpcError, OSError) as error:
            log.warning("[%s] checkpoint collection failed: %s", self.name, error)
            return
        if report.rows:
            log.info("[%s] collected %d checkpoints (%d bytes)", self.name, report.count(DELETED), report.bytes_freed)

    def trial_dir(self, trial: Trial) -> Path:
        return self.workdir / self.study / f"trial-{trial.id:07d}"

    def run_trial(self, trial: Trial) -> Trial:
        """Trains and evaluates one trial, then completes it (or reports it failed/stopped)."""
        model_dir = self.trial_dir(trial)
        if model_dir.exists():
            log.info("[%s] trial %s was already this worker's (restarted?): training it again",
                     self.name, trial.id)
            shutil.rmtree(model_dir)
        model_dir.mkdir(parents=True)
        ctx = TrialContext(
            trial_id=trial.id,
            study=trial.study,
            generation=trial.generation,
            hparams=dict(trial.hparams),
            warm_start_checkpoint_path=trial.warm_start_checkpoint_path or None,
            model_dir=model_dir,
            steps=trial.steps or self._config_once().algorithm.steps_per_trial,
            worker_id=self.worker_id,
        )
        warm = trial.warm_start_checkpoint_path
        log.info(
            "[%s] trial %s (generation %d): %s; %s", self.name, trial.id, trial.generation,
            " ".join(f"{k}={format_value(v)}" for k, v in sorted(trial.hparams.items())),
            f"warm start from {warm}" if warm else "no warm start",
        )
        with self._lock:
            self._current = ctx
            if self._shutdown.is_set():
                ctx.stop_signal.request(self._stop_reason)
        evaluation = ContinuousEvaluation(
            self.client, trial, ctx, self.evaluator,
            objectives=self._objectives(), pattern=self.checkpoint_pattern, poll_seconds=self.poll_seconds,
            settle_seconds=self.settle_seconds, keep_checkpoints=self.keep_checkpoints,
            shutting_down=self._shutdown.is_set, on_measurement=lambda m: self.on_measurement(trial, m),
        )
        heartbeat = Heartbeat(self.client, trial, ctx, self.heartbeat_seconds)
        started = time.monotonic()
        evaluation.start()
        heartbeat.start()
        failure = ""
        try:
            self.trainer(ctx)
        except TrialFailure as error:
            failure = str(error)
        except Exception:
            failure = "trainer failed: " + "".join(traceback.format_exc(limit=3)).strip()[-2000:]
        finally:
            evaluation.trainer_done.set()
            evaluation.join()
            heartbeat.done.set()
            heartbeat.join()
            with self._lock:
                self._current = None
        return self._finish(trial, ctx, evaluation, heartbeat.error, failure, time.monotonic() - started)

    def _finish(
        self,
        trial: Trial,
        ctx: TrialContext,
        evaluation: ContinuousEvaluation,
        heartbeat_error: BaseException | None,
        failure: str,
        seconds: float,
    ) -> Trial:
        error = evaluation.error or heartbeat_error
        if isinstance(error, TrialFailure):
            failure = failure or str(error)
        elif isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            failure = failure or f"the service rejected a measurement: {error.details()}"
        elif error is not None and _lost(error):
            return self._lose(trial, error)
        elif error is not None:
            raise error
        try:
            if self._shutdown.is_set() and not failure:
                ended = self.client.stop_trial(trial.id, self._stop_reason, self.worker_id)
                log.info("[%s] trial %s stopped and handed back: %s", self.name, trial.id, self._stop_reason)
            elif failure or evaluation.reports == 0:
                reason = failure or _no_checkpoint_message(ctx.model_dir, self.checkpoint_pattern)
                log.warning("[%s] trial %s failed: %s", self.name, trial.id, reason)
                ended = self.client.complete_trial(trial.id, self.worker_id, failure_reason=reason)
            else:
                ended = self.client.complete_trial(trial.id, self.worker_id)
                early = f" (stopped early: {ctx.stop_signal.reason})" if ctx.stop_signal.reason else ""
                log.info("[%s] trial %s completed in %.1fs%s: %s", self.name, trial.id, seconds, early,
                         _summary(evaluation.last, self._objectives()))
        except grpc.RpcError as rpc_error:
            if not _lost(rpc_error):
                raise
            return self._lose(trial, rpc_error)
        self.counts[ended.status] += 1
        if self._on_trial_end is not None:
            self._on_trial_end(ended)
        return ended

    def _lose(self, trial: Trial, error: BaseException) -> Trial:
        """The service took the trial away (its lease expired, or someone stopped it): move on."""
        details = error.details() if isinstance(error, grpc.RpcError) else str(error)
        log.warning("[%s] trial %s is no longer this worker's: %s", self.name, trial.id, details)
        ended = self.client.get_trial(trial.id)
        self.counts[ended.status] += 1
        if self._on_trial_end is not None:
            self._on_trial_end(ended)
        return ended

    def _config_once(self) -> StudyConfig:
        """The study's config, read once per worker: the steps hint and the objectives."""
        if self._config is None:
            self._config = self.client.get_study(self.study).config
        return self._config

    def _objectives(self) -> tuple[str, ...]:
        return tuple(o.metric for o in self._config_once().objectives)


def _no_checkpoint_message(model_dir: Path, pattern: re.Pattern[str]) -> str:
    others = sorted(p.name for p in model_dir.iterdir()) if model_dir.exists() else []
    found = f"; it holds only: {', '.join(others[:8])}" if others else "; it is empty"
    return (
        f"the trainer wrote no checkpoint into {model_dir} (names must match {pattern.pattern!r}, "
        f"e.g. ckpt-<step>){found}"
    )


def _summary(measurement: Measurement | None, objectives: tuple[str, ...]) -> str:
    if measurement is None:
        return "no measurement"
    shown = ", ".join(f"{k}={format_value(measurement.metrics[k])}" for k in objectives if k in measurement.metrics)
    return f"step {measurement.step}, {shown}"
