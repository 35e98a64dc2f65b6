"""Python mode: a training function and an evaluation function, run as `pbt-worker` runs a command.

The script gets `pbt-worker`'s options (service, study, workers, limits, --quiet, ...) and its
behaviour: a persistent worker identity, retries while the service restarts, SIGTERM stopping the
trial cleanly, progress lines. The trainer should check `ctx.should_stop()` between steps: after
SIGTERM it has `--grace-seconds` to write a checkpoint and return.

Example (train.py):

    job = Job(study_config=config)          # the study is created if it does not exist

    @job.trainer
    def train(ctx: TrialContext) -> None:
        ...                                  # restore ctx.warm_start_checkpoint_path, train,
        save_checkpoint(ctx.checkpoint_path(step), model, optimizer, step=step)

    @job.evaluator
    def evaluate(ctx: TrialContext, checkpoint: Path) -> dict[str, float]:
        return {"loss": ...}

    if __name__ == "__main__":
        sys.exit(job.main())                 # python train.py --service HOST:PORT --study NAME
"""

from __future__ import annotations

from collections.abc import Sequence

from pbt_service.core.types import StudyConfig
from worker_client import cli
from worker_client.context import Evaluator, Trainer


class Job:
    """Holds a trainer, an evaluator and optionally the study's config."""

    def __init__(
        self,
        trainer: Trainer | None = None,
        evaluator: Evaluator | None = None,
        *,
        study_config: StudyConfig | None = None,
    ) -> None:
        self.train = trainer
        self.evaluate = evaluator
        self.study_config = study_config

    def trainer(self, function: Trainer) -> Trainer:
        """Decorator: `function(ctx)` trains one trial and writes checkpoints into ctx.model_dir."""
        self.train = function
        return function

    def evaluator(self, function: Evaluator) -> Evaluator:
        """Decorator: `function(ctx, checkpoint)` returns the checkpoint's metrics."""
        self.evaluate = function
        return function

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Parses `pbt-worker`'s options (from sys.argv by default), runs, returns the exit code."""
        return cli.main(argv, job=cli.PythonJob(self.train, self.evaluate, self.study_config))
