"""Reading results back: the best trials, a trial's lineage and its hyperparameter schedule."""

from __future__ import annotations

from pbt_service.core.fitness import best_trials
from pbt_service.core.lineage import ScheduleSegment, lineage, schedule
from pbt_service.core.types import Study, Trial, TrialStatus
from worker_client.client import PbtClient


def best(client: PbtClient, study: Study, top: int = 1) -> list[Trial]:
    """The study's best completed trials, best first, by its own fitness comparison."""
    completed = client.list_trials(study.name, statuses=[TrialStatus.COMPLETED])
    return best_trials(completed, study.config.objectives, study.config.comparison)[:top]


def trial_schedule(client: PbtClient, trial: Trial) -> list[ScheduleSegment]:
    """The hyperparameters the model of `trial` was trained with, step range by step range."""
    return schedule(lineage(trial, client.get_trial))


def format_schedule(segments: list[ScheduleSegment]) -> str:
    """A table: one row per trial of the lineage."""
    names = sorted({name for s in segments for name in s.hparams})
    header = ["steps", "gen", "trial", *names]
    rows = [
        [f"{s.start_step}-{s.end_step}", str(s.generation), str(s.trial_id),
         *(format_value(s.hparams.get(n)) for n in names)]
        for s in segments
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows])


def format_value(value: object) -> str:
    """Four significant digits for floats, '-' for a missing (inactive) value."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
