"""A study at a glance: state, counts, generations completed, the best trial and who is working
on it; one line of `pbt-results studies` and the header of the dashboard's study page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pbt_service.core.fitness import best_trials
from pbt_service.core.types import Study, StudyState, Trial, TrialStatus

FINISHED = (TrialStatus.COMPLETED, TrialStatus.FAILED, TrialStatus.STOPPED)


@dataclass(frozen=True)
class StudySummary:
    """One line of a study list, and the header of the dashboard's study page."""

    name: str
    state: StudyState
    population_size: int
    max_generations: int
    """0: no generation limit."""
    trial_count: int
    by_status: dict[str, int]
    generations_completed: int
    """Generations whose `population_size` members have all finished."""
    best_trial_id: int | None
    best_metrics: dict[str, float]
    active_workers: tuple[str, ...]
    objectives: tuple[str, ...]
    create_time: datetime | None = None

    @property
    def progress(self) -> float | None:
        """The fraction of generations completed, when the study has a generation limit."""
        if self.max_generations <= 0:
            return None
        return min(1.0, self.generations_completed / self.max_generations)



def summarize(study: Study, trials: Sequence[Trial]) -> StudySummary:
    """Counts, generations completed, the best trial and the workers holding trials now."""
    config = study.config
    by_status: dict[str, int] = {s.value: 0 for s in TrialStatus}
    finished_per_generation: dict[int, int] = {}
    for t in trials:
        by_status[t.status.value] += 1
        if t.status in FINISHED:
            finished_per_generation[t.generation] = finished_per_generation.get(t.generation, 0) + 1
    population = config.algorithm.population_size
    generations = 0
    while finished_per_generation.get(generations, 0) >= population:
        generations += 1
    top = best_trials(trials, config.objectives, config.comparison)
    best = top[0] if top else None
    return StudySummary(
        name=study.name, state=study.state, population_size=population,
        max_generations=config.algorithm.max_generations, trial_count=len(trials), by_status=by_status,
        generations_completed=generations, best_trial_id=best.id if best else None,
        best_metrics=dict(best.final_measurement.metrics) if best and best.final_measurement else {},
        active_workers=tuple(sorted({t.worker_id for t in trials if t.status is TrialStatus.ACTIVE and t.worker_id})),
        objectives=tuple(o.metric for o in config.objectives), create_time=study.create_time,
    )  # fmt: skip
