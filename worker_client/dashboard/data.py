"""What the dashboard's JSON says about studies, computed from the results API alone.

Kept apart from the web framework so the numbers can be checked without a server, and so every
value that leaves here is plain JSON: a diverged trial's NaN or infinite metric becomes `null`
(browsers' `JSON.parse` rejects NaN, and Starlette refuses to encode it).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from typing import Any

from pbt_service.core.types import Goal, ParamValue, Trial, TrialStatus
from worker_client.results import Results, StudyResults, StudySummary
from worker_client.results.rows import finite, iso_time
from worker_client.results.summary import FINISHED

RECENT_TRIALS = 10
NOTHING_YET = "nothing yet: no trial has completed"


def metrics_json(metrics: Mapping[str, float]) -> dict[str, float | None]:
    return {name: finite(value) for name, value in sorted(metrics.items())}


def params_json(hparams: Mapping[str, ParamValue]) -> dict[str, Any]:
    return {name: finite(v) if isinstance(v, float) else v for name, v in sorted(hparams.items())}


def summary_json(summary: StudySummary) -> dict[str, Any]:
    """One study as the list page and the study page's header show it."""
    return {
        "name": summary.name, "state": summary.state.value, "population_size": summary.population_size,
        "max_generations": summary.max_generations, "trial_count": summary.trial_count,
        "by_status": dict(summary.by_status), "completed": summary.by_status.get(TrialStatus.COMPLETED.value, 0),
        "generations_completed": summary.generations_completed, "progress": summary.progress,
        "best_trial_id": summary.best_trial_id, "best_metrics": metrics_json(summary.best_metrics),
        "active_workers": list(summary.active_workers), "objectives": list(summary.objectives),
        "create_time": iso_time(summary.create_time),
    }  # fmt: skip


def study_json(study: StudyResults) -> dict[str, Any]:
    """The study page's data: summary, active trials, the best value after each completed trial,
    the latest finished trials, and a `version` that changes whenever the plots would."""
    trials = study.all_trials()
    summary = study.summary()
    events = study.events()
    active = [t for t in trials if t.status is TrialStatus.ACTIVE]
    finished = sorted((t for t in trials if t.status in FINISHED), key=_end_key, reverse=True)
    measurements = sum(len(t.measurements) for t in trials)
    completed = summary.by_status.get(TrialStatus.COMPLETED.value, 0)
    return {
        "summary": summary_json(summary),
        "objective": _objective(study),
        "active": [_active_json(t) for t in active],
        "best_series": best_series(study),
        "recent": [
            {"trial_id": t.id, "generation": t.generation, "status": t.status.value, "worker_id": t.worker_id,
             "event": events[t.id].value, "metrics": metrics_json(t.final_measurement.metrics
                                                                  if t.final_measurement else {}),
             "hparams": params_json(t.hparams), "end_time": iso_time(t.end_time)}
            for t in finished[:RECENT_TRIALS]
        ],  # fmt: skip
        "empty": completed == 0,
        "message": NOTHING_YET if completed == 0 else "",
        "version": f"{summary.state.value}:{len(trials)}:{measurements}:{completed}:{len(finished)}",
    }


def best_series(study: StudyResults) -> list[dict[str, Any]]:
    """After each completed trial (in the order they ended), the best value of the study's first
    objective so far and the trial holding it: the "best fitness over time" line."""
    objective = study.study.config.objectives[0]
    sign = 1.0 if objective.goal is Goal.MAXIMIZE else -1.0
    done = sorted((t for t in study.all_trials() if t.status is TrialStatus.COMPLETED), key=_end_key)
    series: list[dict[str, Any]] = []
    best: tuple[float, int] | None = None
    for count, trial in enumerate(done, start=1):
        value = finite((trial.final_measurement.metrics if trial.final_measurement else {}).get(objective.metric))
        if value is not None and (best is None or sign * value > sign * best[0]):
            best = (value, trial.id)
        if best is not None:
            series.append({"completed": count, "end_time": iso_time(trial.end_time), "value": best[0],
                           "trial_id": best[1]})
    return series


def _objective(study: StudyResults) -> dict[str, str]:
    first = study.study.config.objectives[0]
    return {"metric": first.metric, "goal": first.goal.value}


def _active_json(trial: Trial) -> dict[str, Any]:
    last = trial.measurements[-1] if trial.measurements else None
    return {
        "trial_id": trial.id, "generation": trial.generation, "worker_id": trial.worker_id,
        "step": last.step if last else None, "steps": trial.steps, "measurements": len(trial.measurements),
        "metrics": metrics_json(last.metrics if last else {}), "hparams": params_json(trial.hparams),
        "parent_trial_id": trial.parent_trial_id, "heartbeat_time": iso_time(trial.heartbeat_time),
    }  # fmt: skip


def _end_key(trial: Trial) -> tuple[float, int]:
    return (trial.end_time.timestamp() if trial.end_time else math.inf, trial.id)


class Snapshots:
    """One read of a study serves every request that comes within `max_age` seconds: a page's
    poll and the plots it then asks for share one `list_trials`, and two open tabs do not double
    the load on the service. A lock per study makes concurrent requests wait for one read."""

    def __init__(self, results: Results, max_age: float) -> None:
        self.results = results
        self.max_age = max_age
        self._entries: dict[str, tuple[float, StudyResults]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def study(self, name: str) -> StudyResults:
        """The study with its trials loaded; raises what `Results.study` raises."""
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            entry = self._entries.get(name)
            now = time.monotonic()
            if entry is not None and now - entry[0] < self.max_age:
                return entry[1]
            study = self.results.study(name)
            study.all_trials()
            self._entries[name] = (time.monotonic(), study)
            return study
