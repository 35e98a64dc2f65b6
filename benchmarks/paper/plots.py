"""The paper's figures as PNG files (matplotlib, Agg backend), drawn from `RunResult`s only, so a
saved results.json can be replotted.

Per task: best objective against resource (figure 4) and against training step (figure 6), the
medians over seeds; the hyperparameter schedule of the median seed's chosen model (figure 7); the
standard error of the mean over seeds against resource for PBT 5x5 and random search (figure 10);
the final score of the opponent strategies at the same resource (figure 13); the Pareto fronts of
a two-objective task. Across tasks: generations per hour against workers (figure 12).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from benchmarks.paper.methods import METHODS  # noqa: E402
from benchmarks.paper.records import RunResult  # noqa: E402
from benchmarks.paper.scalability import ScalingRow  # noqa: E402
from benchmarks.paper.variants import OPPONENT_ROWS  # noqa: E402

SCHEDULE_ROWS = ("pbt-5x5", "pbt-5x20", "ray-pbt", "ray-pb2", "random")
SEM_ROWS = ("pbt-5x5", "random")


def _style(method: str) -> dict[str, object]:
    """One colour per method in every figure; ours solid, packages dashed, baselines dotted, so
    families read apart in grey too."""
    names = list(METHODS)
    color = plt.get_cmap("tab20")(names.index(method) % 20 if method in names else 19)
    if method.startswith("pbt"):
        return {"color": color, "linestyle": "-", "linewidth": 2.2 if method in ("pbt-5x5", "pbt-5x20") else 1.2}
    if method.startswith(("optuna", "ray")):
        return {"color": color, "linestyle": "--", "linewidth": 1.3}
    return {"color": color, "linestyle": ":", "linewidth": 1.8}


def step_values(curve: Sequence[tuple[int, float]], grid: np.ndarray) -> np.ndarray:
    """The curve as a step function on `grid` (NaN before its first point)."""
    xs = np.array([x for x, _ in curve], dtype=float)
    ys = np.array([y for _, y in curve], dtype=float)
    index = np.searchsorted(xs, grid, side="right") - 1
    return np.where(index >= 0, ys[np.clip(index, 0, None)], np.nan) if len(xs) else np.full(len(grid), np.nan)


def _curves(runs: Sequence[RunResult], attr: str, grid: np.ndarray) -> np.ndarray:
    return np.array([step_values(getattr(r, attr), grid) for r in runs])


def _grid(runs: Sequence[RunResult], attr: str) -> np.ndarray:
    top = max((getattr(r, attr)[-1][0] for r in runs if getattr(r, attr)), default=1)
    return np.linspace(0, top, 200)


def _log_if_positive(ax: Axes, values: np.ndarray) -> None:
    finite = values[np.isfinite(values)]
    if finite.size and np.all(finite > 0) and finite.max() / max(finite.min(), 1e-300) > 20:
        ax.set_yscale("log")


def _by_method(runs: Sequence[RunResult]) -> dict[str, list[RunResult]]:
    grouped: dict[str, list[RunResult]] = {}
    for run in runs:
        if run.status == "ok":
            grouped.setdefault(run.method, []).append(run)
    return grouped


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)


def best_against(
    task: str, runs: Sequence[RunResult], attr: str, xlabel: str, title: str, path: Path, limit: float | None = None
) -> Path:
    """Figures 4 and 6: the median over seeds of each method's best score so far, and the task's
    limit (its best decaying schedule) where it has one."""
    figure, ax = plt.subplots(figsize=(8, 5))
    if limit is not None and math.isfinite(limit):
        ax.axhline(limit, color="black", linewidth=0.8, label="limit (best schedule)")
    grouped = _by_method(runs)
    grid = _grid([r for rs in grouped.values() for r in rs], attr)
    drawn = np.array([])
    for method, method_runs in grouped.items():
        with np.errstate(all="ignore"):
            median = np.nanmedian(_curves(method_runs, attr, grid), axis=0) if method_runs else grid * np.nan
        ax.plot(grid, median, label=method, **_style(method))  # type: ignore[arg-type]
        drawn = np.concatenate([drawn, median])
    if not grouped:
        _empty(ax, "no run finished")
    _log_if_positive(ax, drawn)
    ax.set(xlabel=xlabel, ylabel="score of the chosen model (lower is better)", title=f"{title}: {task}")
    ax.legend(fontsize=7, ncol=2)
    return _save(figure, path)


def _median_run(runs: Sequence[RunResult]) -> RunResult:
    ordered = sorted(runs, key=lambda r: (math.isnan(r.score), r.score))
    return ordered[(len(ordered) - 1) // 2]


def schedules(task: str, runs: Sequence[RunResult], path: Path) -> Path:
    """Figure 7: numeric hyperparameters of the median seed's chosen model against step."""
    grouped = _by_method(runs)
    chosen = {m: _median_run(grouped[m]) for m in SCHEDULE_ROWS if m in grouped}
    names = sorted({k for r in chosen.values() for _, h in r.schedule for k, v in h.items()
                    if isinstance(v, (int, float))})[:4]
    figure, axes = plt.subplots(max(1, len(names)), 1, figsize=(8, 2.6 * max(1, len(names))), squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=False):
        for method, run in chosen.items():
            points = [(start, float(h[name])) for start, h in run.schedule if name in h]
            if not points:
                continue
            end = max(run.step_curve[-1][0] if run.step_curve else points[-1][0], points[-1][0] + 1)
            xs = [p[0] for p in points] + [end]
            ys = [p[1] for p in points] + [points[-1][1]]
            ax.step(xs, ys, where="post", label=method, **_style(method))
        values = [float(h[name]) for r in chosen.values() for _, h in r.schedule if name in h]
        if values and min(values) > 0 and max(values) / min(values) > 20:
            ax.set_yscale("log")
        ax.set(ylabel=name, xlabel="training step")
        ax.legend(fontsize=7)
    if not names:
        _empty(axes[0, 0], "no schedule recorded")
    axes[0, 0].set_title(f"figure 7, schedule of the median seed's chosen model: {task}")
    return _save(figure, path)


def standard_error(task: str, runs: Sequence[RunResult], path: Path) -> Path:
    """Figure 10: standard error of the mean over seeds of the best score against resource."""
    figure, ax = plt.subplots(figsize=(8, 4))
    grouped = _by_method(runs)
    present = [m for m in SEM_ROWS if len(grouped.get(m, [])) >= 2]
    grid = _grid([r for m in present for r in grouped[m]], "resource_curve")
    for method in present:
        values = _curves(grouped[method], "resource_curve", grid)
        with np.errstate(all="ignore"):
            sem = np.nanstd(values, axis=0, ddof=1) / np.sqrt(np.sum(np.isfinite(values), axis=0))
        ax.plot(grid, sem, label=f"{method} ({len(grouped[method])} seeds)", **_style(method))  # type: ignore[arg-type]
    if not present:
        _empty(ax, "the standard error needs at least 2 seeds of pbt-5x5 or random")
    ax.set(xlabel="resource (training steps, all trials)", ylabel="standard error of the mean",
           title=f"figure 10: {task}")
    if present:
        ax.legend(fontsize=8)
    return _save(figure, path)


def opponents(task: str, runs: Sequence[RunResult], path: Path) -> Path:
    """Figure 13: final score per opponent strategy at the same resource, one point per seed."""
    figure, ax = plt.subplots(figsize=(6, 4))
    grouped = _by_method(runs)
    labels = [label for label, method in OPPONENT_ROWS.items() if method in grouped]
    for i, label in enumerate(labels):
        scores = [r.score for r in grouped[OPPONENT_ROWS[label]] if math.isfinite(r.score)]
        ax.scatter([i] * len(scores), scores, alpha=0.7)
        if scores:
            ax.hlines(statistics.median(scores), i - 0.3, i + 0.3, color="black")
    if not labels:
        _empty(ax, "no opponent-strategy run on this task")
    ax.set_xticks(range(len(labels)), labels)
    ax.set(xlabel="opponents", ylabel="score (lower is better)", title=f"figure 13: {task}")
    return _save(figure, path)


def fronts(
    task: str, runs: Sequence[RunResult], path: Path, labels: Sequence[str] = ("objective 1", "objective 2")
) -> Path:
    """The Pareto front found by the median seed of each method (objectives oriented to minimize,
    test metrics where the task has them)."""
    figure, ax = plt.subplots(figsize=(7, 5))
    for method, method_runs in _by_method(runs).items():
        points = sorted(tuple(p) for p in _median_run(method_runs).front if len(p) >= 2)
        if points:
            ax.step([p[0] for p in points], [p[1] for p in points], where="post", marker="o", markersize=3,
                    label=method, **_style(method))  # type: ignore[arg-type]
    ax.set(xlabel=f"{labels[0]} (minimized)", ylabel=f"{labels[1]} (minimized)", title=f"Pareto fronts: {task}")
    ax.legend(fontsize=7, ncol=2)
    return _save(figure, path)


def scaling(rows: Sequence[ScalingRow], path: Path) -> Path:
    """Figure 12: generations per hour against workers, with perfect scaling for reference."""
    figure, ax = plt.subplots(figsize=(6, 4))
    if rows:
        workers = [r.workers for r in rows]
        ax.plot(workers, [r.generations_per_hour for r in rows], marker="o", label="measured")
        one = rows[0]
        ideal = [3600 / one.trial_seconds * w / one.population for w in workers]
        ax.plot(workers, ideal, linestyle="--", label="perfect scaling")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.legend()
        title = f"figure 12: trials of {one.trial_seconds:g} s, population {one.population}"
    else:
        _empty(ax, "not run")
        title = "figure 12"
    ax.set(xlabel="workers", ylabel="generations per hour", title=title)
    return _save(figure, path)


def task_figures(
    task: str, runs: Sequence[RunResult], out: Path, limit: float | None = None, objectives: Sequence[str] = ()
) -> list[Path]:
    """Every per-task figure, written to `out` (figure 13 where an opponent variant ran, the Pareto
    fronts when `objectives` names two or more); returns their paths."""
    paths = [
        best_against(task, runs, "resource_curve", "resource (training steps, all trials)", "figure 4",
                     out / f"fig4_{task}.png", limit),
        best_against(task, runs, "step_curve", "training step of the model", "figure 6", out / f"fig6_{task}.png",
                     limit),
        schedules(task, runs, out / f"fig7_{task}.png"),
        standard_error(task, runs, out / f"fig10_{task}.png"),
    ]
    if any(r.method in OPPONENT_ROWS.values() and r.method != OPPONENT_ROWS["past"] for r in runs):
        paths.append(opponents(task, runs, out / f"fig13_{task}.png"))
    if len(objectives) >= 2:
        paths.append(fronts(task, runs, out / f"pareto_{task}.png", objectives))
    return paths
