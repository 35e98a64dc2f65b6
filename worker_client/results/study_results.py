"""The Python API for reading results: a study's summary, trials with filters, best trials and
Pareto front, lineages and schedules, tables and DataFrames, and exports.

Example:
    from worker_client.results import connect

    with connect("localhost:50051") as results:          # or "sqlite:///runs/demo/pbt.db"
        print([s.name for s in results.studies()])
        study = results.study("digits")
        top = study.best(3)
        df = study.trials_dataframe()                     # pandas, with the `results` extra
        print(study.schedule(top[0].id))

Everything reads through a `ResultsSource`, so the same calls work against the service and,
read-only, against the database. A `StudyResults` loads the study's trials once and keeps them;
`refresh()` reads them again (the dashboard does, on every update).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pbt_service.core.errors import NotFoundError
from pbt_service.core.fitness import best_trials, pareto_front
from pbt_service.core.lineage import ScheduleSegment, lineage, replay_plan
from pbt_service.core.types import Comparison, Study, Trial, TrialStatus
from worker_client.client import PbtClient
from worker_client.results.events import Event, event_of
from worker_client.results.rows import dataframe, export, finite, measurement_rows, trial_rows
from worker_client.results.source import ResultsSource, open_source
from worker_client.results.summary import StudySummary, summarize
from worker_client.settings import ClientSettings

if TYPE_CHECKING:
    import pandas

SORT_KEYS = ("id", "generation", "fitness", "end_time", "worker")
"""`trials(sort=...)` takes one of these or the name of a metric."""


@dataclass(frozen=True)
class Lineage:
    """A trial's ancestors (the root first), the trial, and every trial that warm-started from it
    directly or indirectly (by id)."""

    ancestors: tuple[Trial, ...]
    trial: Trial
    descendants: tuple[Trial, ...]


class Results:
    """A connection to a service or a database, and the studies in it. Close it (or use `with`)."""

    def __init__(self, source: ResultsSource) -> None:
        self.source = source

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> Results:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def studies(self) -> list[StudySummary]:
        """Every study with its state and progress, by name."""
        return [
            summarize(study, self.source.list_trials(study.name, with_measurements=False))
            for study in self.source.list_studies()
        ]

    def study(self, name: str) -> StudyResults:
        """Raises NotFoundError for an unknown study."""
        return StudyResults(self.source, self.source.get_study(name))

    def trial(self, trial_id: int) -> Trial:
        """One trial with all its measurements; raises NotFoundError."""
        return self.source.get_trial(trial_id)


def connect(target: str | ClientSettings | PbtClient) -> Results:
    """Results from a service (an address, `ClientSettings`, or an open `PbtClient`) or, read-only,
    a database URL (`sqlite:///PATH`, `postgresql://USER@HOST/DB`)."""
    return Results(open_source(target))


class StudyResults:
    """The trials of one study and the questions people ask of them."""

    def __init__(self, source: ResultsSource, study: Study) -> None:
        self.source = source
        self.study = study
        self._trials: list[Trial] | None = None
        self._by_id: dict[int, Trial] = {}

    @property
    def name(self) -> str:
        return self.study.name

    def refresh(self) -> StudyResults:
        """Reads the study and its trials again."""
        self.study = self.source.get_study(self.study.name)
        self._trials = None
        self._by_id = {}
        return self

    def all_trials(self) -> list[Trial]:
        """Every trial with its measurements, by id (read once, kept until `refresh`)."""
        if self._trials is None:
            self._trials = sorted(self.source.list_trials(self.study.name), key=lambda t: t.id)
            self._by_id = {t.id: t for t in self._trials}
        return self._trials

    def trial(self, trial_id: int) -> Trial:
        """Raises NotFoundError when the study has no such trial."""
        self.all_trials()
        if trial_id not in self._by_id:
            raise NotFoundError(f"trial {trial_id} not found in study {self.name!r}")
        return self._by_id[trial_id]

    def trials(
        self,
        *,
        status: TrialStatus | str | Sequence[TrialStatus | str] = (),
        generation: int | None = None,
        worker: str | None = None,
        parent: int | None = None,
        sort: str = "id",
        descending: bool = False,
        limit: int | None = None,
    ) -> list[Trial]:
        """The trials matching every filter given: status (one or several, by enum or name),
        generation, worker id, parent (the trial they warm-started from). `sort` is one of
        SORT_KEYS or a metric name (trials without it last); "fitness" is the study's own order,
        best first. Raises ValueError naming a bad status or sort key."""
        wanted = _statuses(status)
        chosen = [
            t for t in self.all_trials()
            if (not wanted or t.status in wanted) and (generation is None or t.generation == generation)
            and (worker is None or t.worker_id == worker) and (parent is None or t.parent_trial_id == parent)
        ]  # fmt: skip
        ordered = self._sorted(chosen, sort, descending)
        return ordered if limit is None else ordered[:limit]

    def best(self, top: int = 1) -> list[Trial]:
        """The best completed trials by the study's fitness (diverged ones never), best first.
        For a PARETO study the first front comes first."""
        config = self.study.config
        return best_trials(self.all_trials(), config.objectives, config.comparison)[: max(top, 0)]

    def pareto_front(self) -> list[Trial]:
        """The completed trials no other completed trial dominates on every objective, best first
        (lexicographically, as `best` orders a front)."""
        config = self.study.config
        front = {t.id for t in pareto_front(self.all_trials(), config.objectives)}
        return [t for t in best_trials(self.all_trials(), config.objectives, Comparison.PARETO) if t.id in front]

    def lineage(self, trial_id: int) -> Lineage:
        """Ancestors through the warm-start links, and descendants. Raises NotFoundError, and
        MissingTrialError/CorruptLineageError for broken parent links (as `schedule` does)."""
        trial = self.trial(trial_id)
        ancestors = lineage(trial, self.trial)[:-1]
        children: dict[int, list[int]] = {}
        for t in self.all_trials():
            if t.parent_trial_id is not None:
                children.setdefault(t.parent_trial_id, []).append(t.id)
        found: list[int] = []
        frontier = [trial.id]
        while frontier:
            nxt = [c for tid in frontier for c in children.get(tid, [])]
            found += nxt
            frontier = nxt
        return Lineage(ancestors=tuple(ancestors), trial=trial, descendants=tuple(self.trial(i) for i in sorted(found)))

    def schedule(self, trial_id: int) -> list[ScheduleSegment]:
        """The hyperparameters the trial's model was trained with, step range by step range."""
        return list(replay_plan([trial_id], self.trial).segments)

    def events(self) -> dict[int, Event]:
        """How each trial was created (start, continue, explore, exploit, restart)."""
        trials = self.all_trials()
        return {t.id: event_of(t, self._by_id) for t in trials}

    def summary(self) -> StudySummary:
        return summarize(self.study, self.all_trials())

    # --- tables ---

    def trial_rows(self, trials: Iterable[Trial] | None = None) -> list[dict[str, Any]]:
        """One flat row per trial: ids, status, lineage links, event, final step and metrics
        (`metric_<name>`), hyperparameters (`param_<name>`), times and checkpoint."""
        return trial_rows(self.study, self.all_trials() if trials is None else list(trials), self.events())

    def measurement_rows(self) -> list[dict[str, Any]]:
        """One flat row per measurement of every trial (intermediate and final)."""
        return measurement_rows(self.all_trials())

    def trials_dataframe(self) -> pandas.DataFrame:
        """`trial_rows()` as a pandas DataFrame indexed by nothing (a column `trial_id`), as
        `optuna.Study.trials_dataframe()` users expect. Needs pandas (the `results` extra)."""
        return dataframe(self.trial_rows(), kind="trials")

    def measurements_dataframe(self) -> pandas.DataFrame:
        """`measurement_rows()` as a pandas DataFrame."""
        return dataframe(self.measurement_rows(), kind="measurements")

    def export(self, directory: str, formats: Sequence[str] = ("csv", "json")) -> list[str]:
        """Writes the study to files other tools read; returns their paths. See `rows.export`."""
        return [str(p) for p in export(self, Path(directory), formats)]

    def _sorted(self, trials: list[Trial], sort: str, descending: bool) -> list[Trial]:
        if sort == "fitness":
            config = self.study.config
            ranked = best_trials(trials, config.objectives, config.comparison)
            placed = {t.id for t in ranked}
            rest = [t for t in trials if t.id not in placed]
            ordered = ranked + rest
            return list(reversed(ordered)) if descending else ordered
        if sort in ("id", "generation", "end_time", "worker"):
            def key(t: Trial) -> tuple[Any, ...]:
                value = {"id": t.id, "generation": t.generation, "worker": t.worker_id,
                         "end_time": t.end_time.timestamp() if t.end_time else math.inf}[sort]
                return (value, t.id)

            return sorted(trials, key=key, reverse=descending)
        metrics = {m for t in self.all_trials() for m in (t.final_measurement.metrics if t.final_measurement else {})}
        if sort not in metrics:
            raise ValueError(f"sort: {sort!r} is neither one of {', '.join(SORT_KEYS)} nor a metric of this study "
                             f"({', '.join(sorted(metrics)) or 'none yet'})")
        present = [t for t in trials if _metric(t, sort) is not None]
        absent = [t for t in trials if _metric(t, sort) is None]
        return sorted(present, key=lambda t: (_metric(t, sort), t.id), reverse=descending) + absent


def _statuses(status: TrialStatus | str | Sequence[TrialStatus | str]) -> set[TrialStatus]:
    items: Sequence[TrialStatus | str] = [status] if isinstance(status, TrialStatus | str) else status
    chosen: set[TrialStatus] = set()
    for item in items:
        if isinstance(item, TrialStatus):
            chosen.add(item)
            continue
        try:
            chosen.add(TrialStatus(item.lower()))
        except ValueError:
            names = ", ".join(s.value for s in TrialStatus)
            raise ValueError(f"status: {item!r} is not one of {names}") from None
    return chosen


def _metric(trial: Trial, name: str) -> float | None:
    final = trial.final_measurement
    return None if final is None else finite(final.metrics.get(name))


