"""The PBT plots drawn with matplotlib, for `plots`: a `Figure` without pyplot (no display, no
global state), each drawn element carrying a stable `gid`. matplotlib is imported when a figure is
drawn, so importing this module needs none."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from pbt_service.core.types import Goal, ParameterType, Scale
from worker_client.results.events import Event
from worker_client.results.plot_data import (
    EMPTY_MESSAGE,
    PlotInput,
    best_so_far,
    lineage_tree,
    progress,
    schedules,
    value_range,
)
from worker_client.results.plot_distributions import distributions, numeric, parameters
from worker_client.results.plot_style import (
    EVENT_LABELS,
    GREY,
    MARKED_EVENTS,
    member_colour,
    missing_library,
    plot_title,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MARKERS = {
    Event.EXPLOIT: {"marker": "^", "color": "black", "markersize": 7},
    Event.EXPLORE: {"marker": "o", "markerfacecolor": "white", "markeredgecolor": "black", "markersize": 5},
    Event.RESTART: {"marker": "x", "color": "black", "markersize": 7},
}


def draw(name: str, inp: PlotInput, top: int) -> Figure:
    """Plot `name` (one of `plots.PLOTS`) as a matplotlib Figure with an Agg canvas."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise missing_library(error) from error
    plots: dict[str, Callable[[Figure, PlotInput, int], None]] = {
        "progress": _progress, "best": _best, "schedule": _schedule,
        "lineage": _lineage, "hyperparameters": _hyperparameters,
    }
    figure = Figure(figsize=(9, 5), layout="constrained")
    FigureCanvasAgg(figure)
    plots[name](figure, inp, top)
    return figure


def _empty(figure: Figure, title: str) -> None:
    figure.clear()
    figure.set_size_inches(9, 4)
    ax = figure.add_subplot()
    ax.text(0.5, 0.5, EMPTY_MESSAGE, ha="center", va="center", fontsize=16, transform=ax.transAxes, gid="empty")
    ax.set_axis_off()
    figure.suptitle(title)


def _integer_x(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _progress(figure: Figure, inp: PlotInput, top: int) -> None:
    data, title = progress(inp), plot_title(inp, "progress", top)
    if not data.curves:
        return _empty(figure, title)
    ax = figure.add_subplot()
    for c in data.curves:
        colour = member_colour(c.member)
        lone = "." if len(c.steps) == 1 else None  # a trial no child continued, measured once: else invisible
        ax.plot(c.steps, c.values, color=colour, linewidth=1.3, alpha=0.9, marker=lone, gid=f"trial-{c.trial_id}")
        if c.jump_from is not None:
            ax.plot([c.jump_from[0], c.steps[0]], [c.jump_from[1], c.values[0]], color=colour, linestyle=":")
    for event in MARKED_EVENTS:
        if marks := [m for m in data.markers if m.event is event]:
            ax.plot([m.step for m in marks], [m.value for m in marks], linestyle="none", gid=event.value,
                    label=f"{EVENT_LABELS[event]} ({len(marks)})", **MARKERS[event])  # type: ignore[arg-type]
    ax.set(xlabel="training step", ylabel=inp.metric, title=title)
    if data.markers:
        ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)


def _best(figure: Figure, inp: PlotInput, top: int) -> None:
    data, title = best_so_far(inp), plot_title(inp, "best", top)
    if not data.by_step.x:
        return _empty(figure, title)
    figure.set_size_inches(11, 4.5)
    axes = figure.subplots(1, 2, sharey=True)
    xlabels = ("resource: steps trained by all completed trials", "training step")
    for ax, series, xlabel in zip(axes, (data.by_resource, data.by_step), xlabels, strict=True):
        ax.scatter(series.x, series.values, s=12, color=GREY, label="completed trial", gid="trials")
        ax.plot(series.x, series.best, drawstyle="steps-post", color="#1f77b4", linewidth=2, label="best so far",
                gid="best-so-far")
        ax.set(xlabel=xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(inp.metric)
    axes[0].legend(loc="best", fontsize="small")
    figure.suptitle(title)


def _schedule(figure: Figure, inp: PlotInput, top: int) -> None:
    lines, title = schedules(inp, top), plot_title(inp, "schedule", top)
    specs = parameters(inp, [h for line in lines for h in line.hparams])
    if not specs:
        return _empty(figure, title)
    figure.set_size_inches(9, 1.2 + 2.2 * len(specs))
    axes = figure.subplots(len(specs), 1, sharex=True, squeeze=False)[:, 0]
    for ax, spec in zip(axes, specs, strict=True):
        categories = [str(v) for v in spec.values]
        for line in lines:
            xs, ys = line.xy(spec.name)
            if spec.type is ParameterType.CATEGORICAL:
                y = [categories.index(str(v)) if str(v) in categories else math.nan for v in ys]
            else:
                y = [numeric(v) for v in ys]
            width = max(1.0, 3 - 0.6 * line.rank)  # the best on top would hide the others where they agree
            ax.plot(xs, y, drawstyle="steps-post", color=member_colour(line.rank), linewidth=width,
                    label=f"#{line.rank + 1}: trial {line.trial_id}", gid=f"schedule-{line.trial_id}-{spec.name}")
        if spec.type is ParameterType.CATEGORICAL:
            ax.set_yticks(range(len(categories)), categories)
            ax.set_ylim(-0.5, len(categories) - 0.5)
        elif spec.scale is Scale.LOG:
            ax.set_yscale("log")
        ax.set_ylabel(spec.name)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("training step")
    figure.suptitle(title)


def _lineage(figure: Figure, inp: PlotInput, top: int) -> None:
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    data, title = lineage_tree(inp), plot_title(inp, "lineage", top)
    if not data.nodes:
        return _empty(figure, title)
    generations = max(n.generation for n in data.nodes) + 1
    figure.set_size_inches(min(16, max(7, 3 + 0.55 * generations)), min(12, 2 + 0.45 * data.members))
    ax = figure.add_subplot()
    for exploit, style in ((False, {"colors": "#999999"}), (True, {"colors": "#555555", "linestyles": "--"})):
        segments = [list(zip(e.x, e.y, strict=True)) for e in data.edges if e.exploit is exploit]
        label = "exploit (warm start from another member)" if exploit else None
        ax.add_collection(LineCollection(segments, linewidths=0.9, zorder=1, label=label,
                                         gid=f"edges-{'exploit' if exploit else 'continue'}", **style))
    coloured = [n for n in data.nodes if n.value is not None]
    grey = [n for n in data.nodes if n.value is None]
    cmap = "viridis_r" if inp.goal is Goal.MINIMIZE else "viridis"
    low, high = value_range([n.value for n in coloured])
    values = [n.value for n in coloured if n.value is not None]
    points = ax.scatter([n.generation for n in coloured], [n.y for n in coloured], c=values,
                        cmap=cmap, norm=Normalize(low, high), s=36, edgecolors="black", linewidths=0.4, zorder=2,
                        gid="nodes")
    ax.scatter([n.generation for n in grey], [n.y for n in grey], color=GREY, s=36, edgecolors="#777777",
               linewidths=0.4, zorder=2, gid="nodes-without-metric",
               label="no metric (diverged, failed, running)" if grey else None)
    if coloured:
        figure.colorbar(points, ax=ax, label=inp.metric)
    best = next((n for n in data.nodes if n.trial_id == data.best_id), None)
    if best is not None:
        ax.scatter([best.generation], [best.y], s=160, facecolors="none", edgecolors="red", linewidths=2, zorder=3,
                   gid="best", label=f"best: trial {best.trial_id}")
    ax.set(xlabel="generation", ylabel="member", title=title, xlim=(-0.5, generations - 0.5),
           ylim=(data.members - 0.5, -0.5))
    ax.set_yticks(range(data.members))
    _integer_x(ax)
    figure.legend(loc="outside lower center", ncols=3, fontsize="small", frameon=False)


def _hyperparameters(figure: Figure, inp: PlotInput, top: int) -> None:
    dists, title = distributions(inp), plot_title(inp, "hyperparameters", top)
    if not dists:
        return _empty(figure, title)
    figure.set_size_inches(9, 1.2 + 2.2 * len(dists))
    axes = figure.subplots(len(dists), 1, sharex=True, squeeze=False)[:, 0]
    for ax, d in zip(axes, dists, strict=True):
        if d.counts is not None:
            bottom = [0] * len(d.generations)
            for k, (category, counts) in enumerate(d.counts.items()):
                ax.bar(d.generations, counts, bottom=bottom, color=member_colour(k), label=category,
                       gid=f"hparam-{d.spec.name}-{category}")
                bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)
            ax.set_ylabel(f"{d.spec.name} (trials)")
        else:
            ax.scatter([p[0] for p in d.points], [p[1] for p in d.points], s=12, alpha=0.6, gid=f"hparam-{d.spec.name}")
            ax.plot(d.generations, d.medians, color="black", linewidth=1.2, marker="_", markersize=14,
                    gid=f"median-{d.spec.name}", label="median")
            ax.set_ylabel(d.spec.name)
            if d.spec.scale is Scale.LOG:
                ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("generation")
    _integer_x(axes[-1])
    figure.suptitle(title)


