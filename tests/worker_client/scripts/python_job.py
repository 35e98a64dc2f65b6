"""A Python-mode job (`worker_client.Job`) with the stand-in trainer of legacy_train.py.

    python -m tests.worker_client.scripts.python_job --service HOST:PORT --study NAME

$FAKE_SLEEP seconds before each of $FAKE_CHECKPOINTS checkpoints; the trainer checks
`ctx.should_stop()` and leaves a `got-stop` file when it is told to stop (and goes on regardless
when $FAKE_IGNORE_STOP is set).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from worker_client import Job, TrialContext
from worker_client.context import step_of_checkpoint

job = Job()


@job.trainer
def train(ctx: TrialContext) -> None:
    sleep = float(os.environ.get("FAKE_SLEEP", "0"))
    step = step_of_checkpoint(ctx.warm_start_checkpoint_path)
    value = 0.0
    if ctx.warm_start_checkpoint_path:
        value = json.loads(Path(ctx.warm_start_checkpoint_path).read_text())["value"]
    h = float(ctx.hparams["h"])
    for _ in range(int(os.environ.get("FAKE_CHECKPOINTS", "2"))):
        deadline = time.monotonic() + sleep
        while time.monotonic() < deadline:
            if ctx.should_stop() and not (ctx.model_dir / "got-stop").exists():
                (ctx.model_dir / "got-stop").write_text(str(os.getpid()))
                if not os.environ.get("FAKE_IGNORE_STOP"):
                    return
            time.sleep(0.01)
        step += 5
        value += h - 0.5 * h**2
        tmp = ctx.model_dir / f".tmp-{step}"
        tmp.write_text(json.dumps({"value": value, "step": step}))
        os.replace(tmp, ctx.checkpoint_path(step))


@job.evaluator
def evaluate(ctx: TrialContext, checkpoint: Path) -> dict[str, float]:
    return {"score": json.loads(checkpoint.read_text())["value"]}


if __name__ == "__main__":
    sys.exit(job.main())
