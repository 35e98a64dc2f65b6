"""Continuous evaluation (paper §3.6.3): beside the trainer, evaluate each new checkpoint of the
model directory as it appears and report its metrics with the checkpoint's path; renew the
trial's lease meanwhile. Both run in threads of their own and hand any error to the trial loop."""

from __future__ import annotations

import logging
import math
import re
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pbt_service.core.types import Measurement, Trial
from worker_client.client import PbtClient
from worker_client.context import Evaluator, TrialContext, TrialFailure, checkpoint_step

log = logging.getLogger("worker_client.worker")


def validate_metrics(raw: object, checkpoint: Path, objectives: Sequence[str]) -> dict[str, float]:
    """The evaluator's result as floats. Raises TrialFailure for anything but a mapping of names
    to numbers that holds every objective metric. NaN and infinities pass: they mean the
    training diverged, which the service records as such."""
    if not isinstance(raw, Mapping):
        raise TrialFailure(
            f"evaluator returned {type(raw).__name__} for {checkpoint.name}, "
            "expected a mapping of metric names to numbers"
        )
    metrics: dict[str, float] = {}
    for name, value in raw.items():
        number: float | None = None
        if not isinstance(value, (bool, str, bytes)) and hasattr(value, "__float__"):
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = None
        if number is None:
            raise TrialFailure(
                f"evaluator returned a non-number for metric {name!r} of {checkpoint.name}: {value!r}"
            )
        metrics[str(name)] = number
    missing = [name for name in objectives if name not in metrics]
    if missing:
        returned = ", ".join(map(repr, metrics)) or "nothing"
        raise TrialFailure(
            f"evaluator left out objective metric(s) {', '.join(map(repr, missing))} for {checkpoint.name}; "
            f"it returned {returned}"
        )
    return metrics


def diverged(measurement: Measurement, objectives: Sequence[str]) -> bool:
    return not all(math.isfinite(measurement.metrics[name]) for name in objectives)


class Heartbeat(threading.Thread):
    """Renews the lease every `seconds` until `done` is set; an early-stop answer stops the trial."""

    def __init__(self, client: PbtClient, trial: Trial, ctx: TrialContext, seconds: float) -> None:
        super().__init__(name=f"pbt-heartbeat-{trial.id}", daemon=True)
        self._client, self._trial, self._ctx, self._seconds = client, trial, ctx, seconds
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.done.wait(self._seconds):
                if self._client.heartbeat(self._trial.id, self._ctx.worker_id):
                    self._ctx.stop_signal.request("the service asks the trial to stop early")
        except BaseException as error:  # noqa: BLE001 - handed to the trial loop
            self.error = error
            self._ctx.stop_signal.request(f"heartbeat failed: {error!r}")


class ContinuousEvaluation(threading.Thread):
    """Evaluates new checkpoints in step order and reports each one, until the trial diverges.

    A checkpoint is evaluated once the trainer is done or once it has not changed for
    `settle_seconds` (for trainers that do not write atomically). With `keep_checkpoints`, older
    evaluated checkpoints beyond that many are deleted; the newest is always kept, since it may
    warm-start a child trial.
    """

    def __init__(
        self,
        client: PbtClient,
        trial: Trial,
        ctx: TrialContext,
        evaluator: Evaluator,
        *,
        objectives: Sequence[str],
        pattern: re.Pattern[str],
        poll_seconds: float,
        settle_seconds: float = 0.0,
        keep_checkpoints: int | None = None,
        shutting_down: Callable[[], bool] = lambda: False,
        on_measurement: Callable[[Measurement], None] = lambda m: None,
    ) -> None:
        super().__init__(name=f"pbt-eval-{trial.id}", daemon=True)
        self._client, self._trial, self._ctx, self._evaluator = client, trial, ctx, evaluator
        self._objectives = tuple(objectives)
        self._pattern = pattern
        self._poll = poll_seconds
        self._settle = settle_seconds
        self._keep = keep_checkpoints
        self._shutting_down = shutting_down
        self._on_measurement = on_measurement
        self.trainer_done = threading.Event()
        self.error: BaseException | None = None
        self.reports = 0
        self.last: Measurement | None = None
        self.diverged = False
        self._seen: set[int] = set()
        self._evaluated: list[Path] = []
        self._signatures: dict[Path, tuple[tuple[int, int], float]] = {}
        self._start_time = time.monotonic()

    def run(self) -> None:
        try:
            while not self._shutting_down() and not self.diverged:
                finished = self.trainer_done.is_set()
                self._evaluate_new(final=finished)
                if finished:
                    return
                self.trainer_done.wait(self._poll)
        except BaseException as error:  # noqa: BLE001 - handed to the trial loop
            self.error = error
            self._ctx.stop_signal.request(f"evaluation failed: {error!r}")

    def _pending(self) -> list[tuple[int, Path]]:
        return sorted(
            (step, path)
            for path in self._ctx.model_dir.iterdir()
            if (step := checkpoint_step(path, self._pattern)) is not None and step not in self._seen
        )

    def _evaluate_new(self, final: bool) -> None:
        for step, path in self._pending():
            if self._shutting_down() or self.diverged or not (final or self._settled(path)):
                return
            try:
                raw = self._evaluator(self._ctx, path)
            except TrialFailure:
                raise
            except Exception as error:
                if not path.exists():
                    log.debug("trial %s: %s vanished before it was evaluated", self._trial.id, path.name)
                    self._seen.add(step)
                    continue
                raise TrialFailure(f"evaluator failed on {path.name}: {error!r}") from error
            self._report(step, path, validate_metrics(raw, path, self._objectives))

    def _report(self, step: int, path: Path, metrics: dict[str, float]) -> None:
        measurement = Measurement(
            step=step,
            metrics=metrics,
            checkpoint_path=str(path.resolve()),
            elapsed_seconds=time.monotonic() - self._start_time,
        )
        self._seen.add(step)
        stop = self._client.report_measurement(self._trial.id, self._ctx.worker_id, measurement)
        self.reports += 1
        self.last = measurement
        self._on_measurement(measurement)
        if diverged(measurement, self._objectives):
            log.warning("trial %s diverged at step %d (%s); stopping its training", self._trial.id, step,
                        ", ".join(f"{k}={metrics[k]}" for k in self._objectives))
            self.diverged = True
            self._ctx.stop_signal.request(f"diverged at step {step}")
        elif stop and not self._ctx.should_stop():
            log.info("trial %s: the service asks it to stop early", self._trial.id)
            self._ctx.stop_signal.request("the service asks the trial to stop early")
        self._evaluated.append(path)
        self._collect_garbage()

    def _settled(self, path: Path) -> bool:
        if self._settle <= 0:
            return True
        signature = _signature(path)
        now = time.monotonic()
        previous = self._signatures.get(path)
        if previous is None or previous[0] != signature:
            self._signatures[path] = (signature, now)
            return False
        return now - previous[1] >= self._settle

    def _collect_garbage(self) -> None:
        if self._keep is None:
            return
        while len(self._evaluated) > max(self._keep, 1):
            old = self._evaluated.pop(0)
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


def _signature(path: Path) -> tuple[int, int]:
    """(total size, newest mtime) of a file or of a folder's files: unchanged means written."""
    try:
        files = [path] if not path.is_dir() else [p for p in path.rglob("*") if p.is_file()]
        stats = [f.stat() for f in files]
    except FileNotFoundError:
        return (-1, -1)
    return (sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0))
