"""A worker = a trainer + an evaluator (paper section 3.6).

The worker asks for a trial, gives the trainer the hparams, the warm-start checkpoint and a fresh
model directory, and evaluates each checkpoint the trainer writes in a second thread (continuous
evaluation), reporting its metrics with the checkpoint's path. When the trainer returns and the
final checkpoint is evaluated, the trial is completed and the worker asks again.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

from pbt_service.core.types import Measurement, Trial
from worker_client.client import PbtClient
from worker_client.context import Evaluator, Trainer, TrialContext, checkpoint_step

log = logging.getLogger(__name__)


class TrialFailure(Exception):
    """The user's trainer or evaluator failed; the trial is reported FAILED with this message."""


@dataclass(frozen=True)
class TrialOutcome:
    trial: Trial
    reports: int


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _numeric_metrics(raw: Mapping[str, object], checkpoint: Path) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        raise TrialFailure(f"evaluator returned {type(raw).__name__} for {checkpoint.name}, expected a mapping")
    metrics: dict[str, float] = {}
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
            raise TrialFailure(f"evaluator returned a non-number for metric {name!r}: {value!r}")
        metrics[str(name)] = float(value)  # type: ignore[arg-type]
    return metrics


class _Evaluation(threading.Thread):
    """Evaluates new checkpoints in step order as they appear, reports them and renews the lease."""

    def __init__(
        self,
        worker: Worker,
        trial: Trial,
        ctx: TrialContext,
        evaluator: Evaluator,
    ) -> None:
        super().__init__(name=f"pbt-eval-{trial.id}", daemon=True)
        self._worker, self._trial, self._ctx, self._evaluator = worker, trial, ctx, evaluator
        self.trainer_done = threading.Event()
        self.error: BaseException | None = None
        self.reports = 0
        self._seen: set[int] = set()
        self._start_time = time.monotonic()

    def run(self) -> None:
        last_contact = time.monotonic()
        try:
            while True:
                finished = self.trainer_done.is_set()
                if self._evaluate_new():
                    last_contact = time.monotonic()
                if finished:
                    return
                if time.monotonic() - last_contact > self._worker.heartbeat_seconds:
                    if self._worker.client.heartbeat(self._trial.id, self._worker.worker_id):
                        self._ctx._stop.set()
                    last_contact = time.monotonic()
                self.trainer_done.wait(self._worker.poll_seconds)
        except BaseException as error:  # noqa: BLE001 - handed to the trial loop
            self.error = error
            self._ctx._stop.set()

    def _evaluate_new(self) -> bool:
        pending = sorted(
            (step, path)
            for path in self._ctx.model_dir.iterdir()
            if (step := checkpoint_step(path)) is not None and step not in self._seen
        )
        for step, path in pending:
            try:
                raw = self._evaluator(self._ctx, path)
            except Exception as error:
                raise TrialFailure(f"evaluator failed on {path.name}: {error!r}") from error
            metrics = _numeric_metrics(raw, path)
            measurement = Measurement(
                step=step,
                metrics=metrics,
                checkpoint_path=str(path.resolve()),
                elapsed_seconds=time.monotonic() - self._start_time,
            )
            self._seen.add(step)
            if self._worker.client.report_measurement(self._trial.id, self._worker.worker_id, measurement):
                self._ctx._stop.set()
            self.reports += 1
            self._worker.on_measurement(self._trial, measurement)
        return bool(pending)


class Worker:
    """Runs trials of one study until it is done (or a limit is reached).

    Example:
        worker = Worker(PbtClient("localhost:50051"), "demo", train, evaluate, workdir=Path("runs"))
        worker.run()
    """

    def __init__(
        self,
        client: PbtClient,
        study: str,
        trainer: Trainer,
        evaluator: Evaluator,
        *,
        worker_id: str | None = None,
        workdir: Path = Path("pbt_runs"),
        heartbeat_seconds: float = 30.0,
        poll_seconds: float = 0.05,
        on_measurement: Callable[[Trial, Measurement], None] | None = None,
        on_trial_end: Callable[[Trial], None] | None = None,
    ) -> None:
        self.client = client
        self.study = study
        self.trainer = trainer
        self.evaluator = evaluator
        self.worker_id = worker_id or default_worker_id()
        self.workdir = Path(workdir)
        self.heartbeat_seconds = heartbeat_seconds
        self.poll_seconds = poll_seconds
        self._on_measurement = on_measurement
        self._on_trial_end = on_trial_end
        self._shutdown = threading.Event()
        self._current: TrialContext | None = None
        self._steps: int | None = None

    def on_measurement(self, trial: Trial, measurement: Measurement) -> None:
        if self._on_measurement is not None:
            self._on_measurement(trial, measurement)

    def shutdown(self) -> None:
        """Asks the worker to stop: the running trial is told to stop and is handed back."""
        self._shutdown.set()
        if self._current is not None:
            self._current._stop.set()

    def run(self, max_trials: int | None = None, max_seconds: float | None = None) -> int:
        """Runs trials until the study is done, `max_trials` ran, `max_seconds` passed or
        `shutdown()` was called; returns the number of trials run."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        done = 0
        while not self._shutdown.is_set():
            if max_trials is not None and done >= max_trials:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            suggestion = self.client.get_new_suggestion(self.study, self.worker_id)
            if suggestion.study_done:
                log.info("worker %s: study %s is done", self.worker_id, self.study)
                break
            if not suggestion.trials:
                self._shutdown.wait(max(suggestion.retry_after_seconds, 0.01))
                continue
            for trial in suggestion.trials:
                self.run_trial(trial)
                done += 1
        return done

    def run_trial(self, trial: Trial) -> Trial:
        """Trains and evaluates one trial, then completes it (or reports it failed/stopped)."""
        model_dir = self.workdir / self.study / f"trial-{trial.id:07d}"
        if model_dir.exists():
            shutil.rmtree(model_dir)
        model_dir.mkdir(parents=True)
        ctx = TrialContext(
            trial_id=trial.id,
            study=trial.study,
            generation=trial.generation,
            hparams=dict(trial.hparams),
            warm_start_checkpoint_path=trial.warm_start_checkpoint_path or None,
            model_dir=model_dir,
            steps=self._steps_hint(),
        )
        self._current = ctx
        evaluation = _Evaluation(self, trial, ctx, self.evaluator)
        evaluation.start()
        failure = ""
        try:
            self.trainer(ctx)
        except Exception:
            failure = "trainer failed: " + "".join(traceback.format_exc(limit=3)).strip()[-2000:]
        finally:
            evaluation.trainer_done.set()
            evaluation.join()
            self._current = None
        return self._finish(trial, ctx, evaluation, failure)

    def _finish(self, trial: Trial, ctx: TrialContext, evaluation: _Evaluation, failure: str) -> Trial:
        error = evaluation.error
        if isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            failure = failure or f"the service rejected a measurement: {error.details()}"
        elif isinstance(error, TrialFailure):
            failure = failure or str(error)
        elif error is not None:
            raise error
        if self._shutdown.is_set() and not failure:
            ended = self.client.stop_trial(trial.id, "worker shut down", self.worker_id)
        elif failure or evaluation.reports == 0:
            reason = failure or f"the trainer wrote no checkpoint (ckpt-<step>) into {ctx.model_dir}"
            log.warning("trial %s failed: %s", trial.id, reason.splitlines()[-1])
            ended = self.client.complete_trial(trial.id, self.worker_id, failure_reason=reason)
        else:
            ended = self.client.complete_trial(trial.id, self.worker_id)
        if self._on_trial_end is not None:
            self._on_trial_end(ended)
        return ended

    def _steps_hint(self) -> int:
        """The study's steps-per-trial hint, read once per worker."""
        if self._steps is None:
            self._steps = self.client.get_study(self.study).config.algorithm.steps_per_trial
        return self._steps


def run_workers(
    address: str,
    study: str,
    trainer: Trainer,
    evaluator: Evaluator,
    num_workers: int,
    workdir: Path,
    **worker_options: object,
) -> int:
    """Runs `num_workers` workers in threads of this process until the study is done; returns the
    number of trials they ran. Each worker has its own channel, as separate processes would."""
    counts = [0] * num_workers

    def work(index: int) -> None:
        with PbtClient(address) as client:
            worker = Worker(
                client, study, trainer, evaluator,
                worker_id=f"{default_worker_id()}-w{index}", workdir=workdir,
                **worker_options,  # type: ignore[arg-type]
            )
            counts[index] = worker.run()

    threads = [threading.Thread(target=work, args=(i,), name=f"pbt-worker-{i}") for i in range(num_workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)

