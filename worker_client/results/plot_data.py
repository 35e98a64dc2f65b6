"""What the PBT plots show, computed from a study and its trials without any plotting library, so the
two backends (matplotlib and plotly) draw the same numbers and tests can check them directly.

Every trial belongs to a *member*: a slot of the population, started by a generation-0 trial and
continued by each child its trials initiate (`initiator_parent_trial_id`). A member's curve is the
chain of its trials, each segment starting at the point it warm-started from, so an exploit shows
as a jump to another member's curve.

Titles, labels and colours are in `plot_style`, the hyperparameter distributions in
`plot_distributions`, and the lineage tree's layout in `plot_lineage` (its names are importable from
here).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pbt_service.core.fitness import best_trials
from pbt_service.core.types import Goal, Measurement, ParamValue, Study, Trial, TrialStatus
from worker_client.results.events import Event, event_of
from worker_client.results.plot_lineage import Edge as Edge
from worker_client.results.plot_lineage import LineageData as LineageData
from worker_client.results.plot_lineage import Node as Node
from worker_client.results.plot_lineage import lineage_tree as lineage_tree
from worker_client.results.plot_lineage import value_range as value_range
from worker_client.results.plot_style import MARKED_EVENTS

EMPTY_MESSAGE = "no completed trials yet"
Point = tuple[float, float]


@dataclass(frozen=True)
class PlotInput:
    """The resolved inputs every plot needs: trials in (generation, number) order, the metric and its
    goal, the study's ranking (best first) and each trial's member row."""

    study: Study
    trials: tuple[Trial, ...]
    metric: str
    goal: Goal
    by_id: Mapping[int, Trial]
    ranking: tuple[Trial, ...]
    members: Mapping[int, int]

    def value(self, measurement: Measurement | None) -> float | None:
        """The metric of a measurement; None when missing or diverged (NaN, infinite)."""
        if measurement is None or self.metric not in measurement.metrics:
            return None
        v = float(measurement.metrics[self.metric])
        return v if math.isfinite(v) else None

    def better(self, a: float, b: float) -> bool:
        return a < b if self.goal is Goal.MINIMIZE else a > b

    def final_value(self, trial: Trial) -> float | None:
        """The metric a trial is judged by: its final measurement's, for completed trials only."""
        return self.value(trial.final_measurement) if trial.status is TrialStatus.COMPLETED else None


def prepare(study: Study, trials: Sequence[Trial], metric: str | None = None) -> PlotInput:
    """Resolve the metric (default: the first objective; its goal, else maximize) and the members.

    Raises ValueError for a metric that is neither an objective nor in any measurement, so a typo
    does not read as an empty study.
    """
    objectives = study.config.objectives
    metric = metric or objectives[0].metric
    goal = next((o.goal for o in objectives if o.metric == metric), Goal.MAXIMIZE)
    reported = {name for t in trials for m in (*t.measurements, t.final_measurement) if m for name in m.metrics}
    if metric not in {o.metric for o in objectives} and metric not in reported:
        known = sorted(reported | {o.metric for o in objectives})
        raise ValueError(f"metric {metric!r} is not reported by study {study.name!r}; known: {', '.join(known)}")
    ordered = tuple(sorted(trials, key=lambda t: (t.generation, t.number, t.id)))
    ranking = tuple(best_trials(ordered, objectives, study.config.comparison))
    return PlotInput(study, ordered, metric, goal, {t.id: t for t in ordered}, ranking, _members(ordered))


def _members(trials: Sequence[Trial]) -> dict[int, int]:
    """Member row of each trial: its initiator's (initiators are older), else a new row."""
    rows: dict[int, int] = {}
    count = 0
    for t in trials:
        initiator = t.initiator_parent_trial_id
        if initiator is not None and initiator in rows:
            rows[t.id] = rows[initiator]
        else:
            rows[t.id], count = count, count + 1
    return rows


def _last_measurement(trial: Trial) -> Measurement | None:
    """The final measurement, else the latest one."""
    return trial.final_measurement or (max(trial.measurements, key=lambda m: m.step) if trial.measurements else None)


def last_step(trial: Trial) -> int | None:
    last = _last_measurement(trial)
    return last.step if last is not None else None


def start_step(trial: Trial, by_id: Mapping[int, Trial]) -> int:
    """The global step a trial warm-started at: its parent's last step (0 for a fresh line)."""
    if trial.parent_trial_id is None:
        return 0
    parent = by_id.get(trial.parent_trial_id)
    step = last_step(parent) if parent is not None else None
    return step if step is not None else trial.lineage.start_step


def _end_point(inp: PlotInput, trial: Trial | None) -> Point | None:
    """Where a child of `trial` starts: its final (else last) measurement, when finite."""
    if trial is None:
        return None
    last = _last_measurement(trial)
    v = inp.value(last)
    return (float(last.step), v) if last is not None and v is not None else None


# --- progress: metric against step ---------------------------------------------------------------

@dataclass(frozen=True)
class Curve:
    """One trial's segment: from the point it warm-started at (when known) through its measurements;
    `jump_from`: for an exploit, the member's own last point, the other end of the jump."""

    trial_id: int
    member: int
    event: Event
    steps: tuple[float, ...]
    values: tuple[float, ...]
    jump_from: Point | None = None


@dataclass(frozen=True)
class Marker:
    event: Event
    trial_id: int
    step: float
    value: float


@dataclass(frozen=True)
class ProgressData:
    curves: tuple[Curve, ...]
    markers: tuple[Marker, ...]


def progress(inp: PlotInput) -> ProgressData:
    """A curve per trial with at least one finite point (NaN points skipped), a marker where each
    exploit, explore and restart began."""
    curves: list[Curve] = []
    markers: list[Marker] = []
    for t in inp.trials:
        measured = sorted(t.measurements, key=lambda m: m.step)
        own = [(float(m.step), v) for m in measured if (v := inp.value(m)) is not None]
        if not own:
            continue
        event = event_of(t, inp.by_id)
        start = _end_point(inp, inp.by_id.get(t.parent_trial_id)) if t.parent_trial_id is not None else None
        points = [start, *own] if start is not None else own
        jump = None
        if event is Event.EXPLOIT and t.initiator_parent_trial_id is not None:
            jump = _end_point(inp, inp.by_id.get(t.initiator_parent_trial_id))
        if event in MARKED_EVENTS:
            markers.append(Marker(event, t.id, *points[0]))
        steps, values = zip(*points, strict=True)
        curves.append(Curve(t.id, inp.members[t.id], event, steps, values, jump))
    return ProgressData(tuple(curves), tuple(markers))


# --- best: best-so-far against resource and against step -----------------------------------------

@dataclass(frozen=True)
class BestSeries:
    """One point per completed trial with a finite metric: x, its metric, the best so far."""

    x: tuple[float, ...]
    values: tuple[float, ...]
    best: tuple[float, ...]
    trial_ids: tuple[int, ...]


@dataclass(frozen=True)
class BestData:
    by_resource: BestSeries
    by_step: BestSeries


def best_so_far(inp: PlotInput) -> BestData:
    """Resource: steps trained by all completed trials (diverged ones too) in completion order (end
    time, then id) — the paper's figure 4; step: the trials' final global steps — figure 6."""
    completed = [t for t in inp.trials if t.status is TrialStatus.COMPLETED]
    completed.sort(key=lambda t: (t.end_time is None, t.end_time.timestamp() if t.end_time else 0.0, t.id))
    resource, by_resource = 0.0, []
    for t in completed:
        resource += max(0, (last_step(t) or 0) - start_step(t, inp.by_id))
        by_resource.append((resource, t))
    by_step = sorted(((float(last_step(t) or 0), t) for t in completed), key=lambda p: p[0])
    return BestData(_series(inp, by_resource), _series(inp, by_step))


def _series(inp: PlotInput, points: list[tuple[float, Trial]]) -> BestSeries:
    xs: list[float] = []
    values: list[float] = []
    best: list[float] = []
    ids: list[int] = []
    for x, t in points:
        if (v := inp.final_value(t)) is None:
            continue
        xs.append(x)
        values.append(v)
        best.append(v if not best or inp.better(v, best[-1]) else best[-1])
        ids.append(t.id)
    return BestSeries(tuple(xs), tuple(values), tuple(best), tuple(ids))


# --- schedule: the hyperparameters of the best trials --------------------------------------------

@dataclass(frozen=True)
class ScheduleLine:
    """A top trial's lineage, root first: segment boundaries (`steps`, one more than segments) and
    each segment's hyperparameters."""

    trial_id: int
    rank: int
    steps: tuple[int, ...]
    hparams: tuple[Mapping[str, ParamValue], ...]

    def xy(self, name: str) -> tuple[list[int], list[ParamValue | None]]:
        """Points for a step plot ("steps-post"): each segment's value, repeated at the end."""
        values = [h.get(name) for h in self.hparams]
        return list(self.steps), [*values, values[-1]]


def schedules(inp: PlotInput, top: int) -> tuple[ScheduleLine, ...]:
    """The schedules of the study's `top` best trials. A lineage whose older ancestors are missing
    from `trials` starts where the oldest known one warm-started."""
    lines = []
    for rank, trial in enumerate(inp.ranking[: max(top, 0)]):
        chain = [trial]
        while (parent := chain[-1].parent_trial_id) is not None and parent in inp.by_id:
            chain.append(inp.by_id[parent])
        chain.reverse()
        steps = [start_step(chain[0], inp.by_id)]
        for t in chain:
            steps.append(max(steps[-1], last_step(t) or steps[-1]))
        lines.append(ScheduleLine(trial.id, rank, tuple(steps), tuple(dict(t.hparams) for t in chain)))
    return tuple(lines)
