"""Training replay (paper section 3.9): re-run a found hyperparameter schedule without the service.

A schedule is the lineage of a trial: segments of (steps, hparams). Replaying runs the same
trainer and evaluator segment by segment, each warm-starting from the previous segment's final
checkpoint — e.g. to retrain the best model on new data with the schedule PBT discovered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from pbt_service.core.lineage import ScheduleSegment
from worker_client.context import Evaluator, Trainer, TrialContext, checkpoint_step


def save_schedule(segments: list[ScheduleSegment], path: Path) -> None:
    path.write_text(json.dumps([asdict(s) for s in segments], indent=2))


def load_schedule(path: Path) -> list[ScheduleSegment]:
    """Reads a schedule written by `save_schedule`; raises ValueError for a malformed file."""
    try:
        return [ScheduleSegment(**row) for row in json.loads(path.read_text())]
    except (TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a schedule file ({error})") from error


def replay(
    segments: list[ScheduleSegment],
    trainer: Trainer,
    evaluator: Evaluator,
    workdir: Path,
    study: str = "replay",
) -> list[tuple[int, Mapping[str, float]]]:
    """Trains through every segment in order; returns (step, metrics) of each segment's final
    checkpoint. Raises RuntimeError when a segment writes no checkpoint."""
    results: list[tuple[int, Mapping[str, float]]] = []
    warm_start: str | None = None
    for index, segment in enumerate(segments):
        model_dir = workdir / f"segment-{index:03d}"
        model_dir.mkdir(parents=True, exist_ok=False)
        ctx = TrialContext(
            trial_id=segment.trial_id,
            study=study,
            generation=segment.generation,
            hparams=dict(segment.hparams),
            warm_start_checkpoint_path=warm_start,
            model_dir=model_dir,
            steps=segment.end_step - segment.start_step,
        )
        trainer(ctx)
        checkpoints = sorted(
            (step, path) for path in model_dir.iterdir() if (step := checkpoint_step(path)) is not None
        )
        if not checkpoints:
            raise RuntimeError(f"segment {index} (trial {segment.trial_id}): no checkpoint in {model_dir}")
        step, final = checkpoints[-1]
        results.append((step, dict(evaluator(ctx, final))))
        warm_start = str(final)
    return results
