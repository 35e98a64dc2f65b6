"""What a trainer and an evaluator receive: everything about a trial, nothing about PBT."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

CHECKPOINT_PATTERN = re.compile(r"^ckpt-(\d+)$")
"""Checkpoints in a model directory are files or folders named `ckpt-<step>`."""


class TrialFailure(Exception):
    """The user's trainer or evaluator failed; the trial is reported FAILED with this message
    and the worker goes on with the next trial."""


class StopSignal:
    """The one owner of a trial's stop request. The worker (shutdown, time limit), the evaluation
    (early stop, divergence, an error) and the heartbeat each call `request`; the trainer reads it
    through `TrialContext.should_stop`. The first reason is kept, for the logs."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._reason: str | None = None

    def request(self, reason: str) -> None:
        with self._lock:
            if self._reason is None:
                self._reason = reason
            self._event.set()

    def requested(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> str | None:
        return self._reason


@dataclass(frozen=True)
class TrialContext:
    """A trial as the user's code sees it.

    The trainer builds its model from `hparams`, restores `warm_start_checkpoint_path` when it is
    set (the parent's final checkpoint), trains about `steps` steps and writes each checkpoint to
    `checkpoint_path(step)` atomically (write a temporary file, then `os.replace`). The evaluator
    is called with the same context and each checkpoint's path.
    """

    trial_id: int
    study: str
    generation: int
    hparams: Mapping[str, float | int | str]
    warm_start_checkpoint_path: str | None
    model_dir: Path
    steps: int
    worker_id: str = ""
    stop_signal: StopSignal = field(default_factory=StopSignal, repr=False, compare=False)

    def checkpoint_path(self, step: int) -> Path:
        """Where the checkpoint of `step` (the global training step) goes."""
        return self.model_dir / f"ckpt-{step:09d}"

    def should_stop(self) -> bool:
        """True once the service asked for an early stop, the trial diverged or the worker is
        shutting down: finish the current step, write a checkpoint and return."""
        return self.stop_signal.requested()


Trainer = Callable[[TrialContext], None]
Evaluator = Callable[[TrialContext, Path], Mapping[str, float]]


def checkpoint_step(path: Path, pattern: re.Pattern[str] = CHECKPOINT_PATTERN) -> int | None:
    """The step encoded in a checkpoint's name, or None for other files (temporaries included)."""
    match = pattern.match(path.name)
    return int(match.group(1)) if match else None


def step_of_checkpoint(path: str | None) -> int:
    """Step to resume counting from: the warm-start checkpoint's step, or 0 without one."""
    if not path:
        return 0
    step = checkpoint_step(Path(path))
    return step if step is not None else 0
