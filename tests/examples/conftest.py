"""A stand-in for the worker: run a trainer and its evaluator on a hand-made TrialContext."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from worker_client.context import Evaluator, Trainer, TrialContext, checkpoint_step


@dataclass(frozen=True)
class Outcome:
    checkpoints: tuple[Path, ...]
    metrics: tuple[Mapping[str, float], ...]

    @property
    def final_checkpoint(self) -> Path:
        return self.checkpoints[-1]

    @property
    def final_metrics(self) -> Mapping[str, float]:
        return self.metrics[-1]


RunTrial = Callable[..., Outcome]


def _step_of(path: Path) -> int:
    step = checkpoint_step(path)
    assert step is not None, path
    return step


@pytest.fixture
def run_trial(tmp_path: Path) -> RunTrial:
    """Returns run(trainer, evaluator, hparams, steps, warm_start=None, trial_id=None): trains in a
    fresh model directory, evaluates every checkpoint in step order, fails on stray files."""
    ids = itertools.count(1)

    def run(
        trainer: Trainer,
        evaluator: Evaluator,
        hparams: Mapping[str, float | int | str],
        steps: int,
        warm_start: Path | None = None,
        trial_id: int | None = None,
    ) -> Outcome:
        number = trial_id if trial_id is not None else next(ids)
        model_dir = tmp_path / f"trial-{number}-{next(ids)}"
        model_dir.mkdir()
        ctx = TrialContext(
            trial_id=number,
            study="standalone",
            generation=0,
            hparams=dict(hparams),
            warm_start_checkpoint_path=str(warm_start) if warm_start else None,
            model_dir=model_dir,
            steps=steps,
        )
        trainer(ctx)
        files = sorted(model_dir.iterdir())
        checkpoints = sorted((p for p in files if checkpoint_step(p) is not None), key=_step_of)
        assert checkpoints, "the trainer wrote no checkpoint"
        assert len(checkpoints) == len(files), f"temporary files left behind: {files}"
        return Outcome(tuple(checkpoints), tuple(dict(evaluator(ctx, p)) for p in checkpoints))

    return run
