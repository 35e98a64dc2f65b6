"""Command mode: run a training script that must not change, and evaluate what it writes.

`CommandTrainer` fills a trial into a command template (and into `PBT_*` environment variables
and `<model_dir>/pbt-trial.json`), runs it in a process group of its own with its output going
to `<model_dir>/trainer.log`, and turns a non-zero exit into a TrialFailure carrying the exit code
and the last lines of output. When the trial must stop (the worker got SIGTERM, the service asked
for an early stop, the trial diverged) the process group gets SIGTERM and, after a grace period,
SIGKILL; the exit code then does not count as a failure.

`CommandEvaluator` runs an evaluation command per checkpoint and reads a JSON object of metrics
from the last line of its stdout.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, cast

from worker_client.context import (
    CHECKPOINT_PATTERN,
    TrialContext,
    TrialFailure,
    checkpoint_step,
)
from worker_client.template import (
    EVALUATOR_RESERVED,
    RESERVED,
    CommandTemplate,
    TemplateError,
    trial_env,
    trial_values,
    write_trial_file,
)

log = logging.getLogger("worker_client.worker")
TAIL_LINES = 20
MAX_LINE = 300
MAX_MESSAGE = 2000
STOP_FILE = "STOP"
# Linux: the trainer dies with its worker even when the worker is SIGKILLed, so a restarted
# worker never races an orphaned trainer for the same model directory.
_PDEATHSIG = (
    ("setpriv", "--pdeathsig", "KILL", "--") if sys.platform == "linux" and shutil.which("setpriv") else ()
)


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _failure(header: str, tail: Iterable[str]) -> TrialFailure:
    lines = list(tail)
    body = "\n".join(lines)
    room = MAX_MESSAGE - len(header) - 40
    if len(body) > room:
        body = "..." + body[-room:]
    text = f"{header}\nlast {len(lines)} line(s) of its output:\n{body}" if lines else f"{header} (no output)"
    return TrialFailure(text)


def check_executable(template: CommandTemplate, what: str) -> None:
    """Raises TemplateError when the program of a template cannot be found."""
    program = template.argv[0]
    if "{" in program:
        return
    if shutil.which(program) is None and not Path(program).is_file():
        raise TemplateError(f"the {what} command's program {program!r} is not found (PATH or file)")


class CommandTrainer:
    """A Trainer that runs `template` for each trial. `parameters` are the study's hparam names.

    Example:
        trainer = CommandTrainer(CommandTemplate.parse(["python", "train.py", "--lr", "{lr}"]), ["lr"])
    """

    def __init__(
        self,
        template: CommandTemplate,
        parameters: Iterable[str],
        *,
        grace_seconds: float = 10.0,
        echo: bool = False,
        cwd: Path | None = None,
    ) -> None:
        self.template = template
        self.parameters = tuple(parameters)
        self.grace_seconds = grace_seconds
        self.echo = echo
        self.cwd = cwd
        template.validate([*self.parameters, *RESERVED], "trainer")

    def __call__(self, ctx: TrialContext) -> None:
        write_trial_file(ctx)
        argv = self.template.render(trial_values(ctx, self.parameters))
        env = {**os.environ, **trial_env(ctx), "PBT_STOP_FILE": str(ctx.model_dir / STOP_FILE)}
        log_path = ctx.model_dir / "trainer.log"
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        with open(log_path, "ab") as log_file:
            try:
                process = subprocess.Popen(
                    [*_PDEATHSIG, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, env=env, cwd=self.cwd, start_new_session=True,
                )
            except OSError as error:
                raise TrialFailure(f"could not start the trainer {argv[0]!r}: {error}") from error
            stdout = cast(IO[bytes], process.stdout)
            pump = threading.Thread(
                target=self._pump, args=(stdout, log_file, tail, ctx.trial_id), daemon=True,
                name=f"pbt-trainer-output-{ctx.trial_id}",
            )
            pump.start()
            code, stopped = self._wait(process, pump, ctx)
            pump.join(timeout=2.0)
        if stopped or code == 0:
            return
        raise _failure(f"the trainer {_exit_text(code)}: {' '.join(argv)}", tail)

    def _wait(
        self, process: subprocess.Popen[bytes], pump: threading.Thread, ctx: TrialContext
    ) -> tuple[int, bool]:
        """Waits for the trainer; on a stop request signals its group, then kills it after the grace.
        Returns (exit code, whether it was told to stop)."""
        stop_sent: float | None = None
        killed = False
        while True:
            pump.join(timeout=0.05)
            code = process.poll()
            if code is None and not pump.is_alive():
                try:
                    code = process.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    code = None
            if code is not None:
                if stop_sent is not None:
                    _signal_group(process.pid, signal.SIGKILL)  # leave no helper processes behind
                return code, stop_sent is not None
            if stop_sent is None and ctx.should_stop():
                (ctx.model_dir / STOP_FILE).touch()
                log.info("trial %s: sending SIGTERM to the trainer (pid %d)", ctx.trial_id, process.pid)
                _signal_group(process.pid, signal.SIGTERM)
                stop_sent = time.monotonic()
            elif stop_sent is not None and not killed and time.monotonic() - stop_sent > self.grace_seconds:
                log.warning("trial %s: the trainer ignored SIGTERM for %.0fs; killing it", ctx.trial_id,
                            self.grace_seconds)
                _signal_group(process.pid, signal.SIGKILL)
                killed = True

    def _pump(
        self, stdout: IO[bytes], log_file: IO[bytes], tail: collections.deque[str], trial_id: int
    ) -> None:
        for raw in iter(stdout.readline, b""):
            try:
                log_file.write(raw)
                log_file.flush()
            except (OSError, ValueError):  # closed: a helper of a finished trainer still writes
                pass
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                tail.append(line[:MAX_LINE])
                if self.echo:
                    print(f"  trial {trial_id} | {line}", file=sys.stderr, flush=True)
        stdout.close()


def _signal_group(pid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


class CommandEvaluator:
    """An Evaluator that runs `template` per checkpoint; its last stdout line must be a JSON object
    of metrics, e.g. `{"loss": 0.31, "accuracy": 0.9}` (NaN and Infinity are accepted)."""

    def __init__(
        self,
        template: CommandTemplate,
        parameters: Iterable[str],
        *,
        cwd: Path | None = None,
        pattern: re.Pattern[str] = CHECKPOINT_PATTERN,
    ) -> None:
        self.template = template
        self.parameters = tuple(parameters)
        self.cwd = cwd
        self.pattern = pattern
        template.validate([*self.parameters, *EVALUATOR_RESERVED], "evaluator")

    def __call__(self, ctx: TrialContext, checkpoint: Path) -> Mapping[str, float]:
        values = trial_values(ctx, self.parameters)
        step = checkpoint_step(checkpoint, self.pattern)
        values.update(checkpoint=str(checkpoint), step="" if step is None else step)
        argv = self.template.render(values)
        env = {**os.environ, **trial_env(ctx), "PBT_CHECKPOINT": str(checkpoint)}
        try:
            done = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, env=env, cwd=self.cwd,
                start_new_session=True, check=False,
            )
        except OSError as error:
            raise TrialFailure(f"could not start the evaluator {argv[0]!r}: {error}") from error
        stdout = done.stdout.decode("utf-8", "replace")
        stderr = done.stderr.decode("utf-8", "replace")
        with open(ctx.model_dir / "evaluator.log", "a", encoding="utf-8") as log_file:
            log_file.write(f"$ {' '.join(argv)}\n{stdout}{stderr}")
        if done.returncode != 0:
            tail = [line[:MAX_LINE] for line in (stdout + stderr).splitlines() if line.strip()][-TAIL_LINES:]
            header = f"the evaluator {_exit_text(done.returncode)} on {checkpoint.name}: {' '.join(argv)}"
            raise _failure(header, tail)
        lines = [line for line in stdout.splitlines() if line.strip()]
        last = lines[-1].strip() if lines else ""
        try:
            metrics = json.loads(last)
        except json.JSONDecodeError:
            metrics = None
        if not isinstance(metrics, dict):
            shown = repr(last[:MAX_LINE]) if last else "nothing"
            raise TrialFailure(
                f"the evaluator's last line of output on {checkpoint.name} is not a JSON object of "
                f"metrics: {shown}"
            )
        return cast(Mapping[str, float], metrics)
