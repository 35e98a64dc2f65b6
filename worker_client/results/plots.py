"""The plots of a PBT study as PNG (matplotlib) and interactive HTML or JSON (plotly).

"progress": the metric of every member against training step, exploits and explores marked (the
picture of a PBT run); "best": the best metric so far against resource and against step (paper
figures 4 and 6); "schedule": the hyperparameter schedules of the best trials (figure 7);
"lineage": who warm-started from whom, coloured by fitness; "hyperparameters": each
hyperparameter's distribution per generation.

Pure functions of a study and its trials (`PbtClient.get_study`, `PbtClient.list_trials`). The
numbers come from `plot_data`, so both backends show the same thing. Each drawn element carries a
stable id (matplotlib `gid`, plotly `meta`): "exploit", "explore", "restart", "best-so-far",
"nodes", "edges-continue", "edges-exploit", "schedule-<trial>-<param>", ... for tests and pages.
matplotlib and plotly are imported only when a figure is drawn: the base client installs
without them.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pbt_service.core.types import Goal, ParameterType, Scale, Study, Trial
from worker_client.atomic import write_atomically
from worker_client.results.events import Event
from worker_client.results.plot_data import (
    EMPTY_MESSAGE,
    MARKED_EVENTS,
    PlotInput,
    best_so_far,
    distributions,
    lineage_tree,
    member_colour,
    numeric,
    parameters,
    prepare,
    progress,
    schedules,
    value_range,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PLOTS: tuple[str, ...] = ("progress", "best", "schedule", "lineage", "hyperparameters")
FORMATS: tuple[str, ...] = ("png", "html")
DPI = 100
INSTALL_HINT = "pip install 'pbt-service[results]'"
EVENT_LABELS = {
    Event.EXPLOIT: "exploit: copied a better member",
    Event.EXPLORE: "explore: new hyperparameters",
    Event.RESTART: "restart: fresh line",
}
MPL_MARKERS = {
    Event.EXPLOIT: {"marker": "^", "color": "black", "markersize": 7},
    Event.EXPLORE: {"marker": "o", "markerfacecolor": "white", "markeredgecolor": "black", "markersize": 5},
    Event.RESTART: {"marker": "x", "color": "black", "markersize": 7},
}
PLOTLY_SYMBOLS = {Event.EXPLOIT: "triangle-up", Event.EXPLORE: "circle-open", Event.RESTART: "x"}
GREY = "#bbbbbb"


def check_plot_names(names: Sequence[str]) -> None:
    """Raises ValueError naming the valid plots when any of `names` is not one."""
    if unknown := [n for n in names if n not in PLOTS]:
        raise ValueError(f"unknown plot {', '.join(map(repr, unknown))}; valid plots: {', '.join(PLOTS)}")


def matplotlib_figure(
    name: str, study: Study, trials: Sequence[Trial], *, metric: str | None = None, top: int = 3
) -> Figure:
    """Plot `name` as a matplotlib Figure (no pyplot: no display, no global state)."""
    check_plot_names([name])
    return _mpl(name, prepare(study, trials, metric), top)


def plotly_figure(name: str, study: Study, trials: Sequence[Trial], *, metric: str | None = None, top: int = 3) -> Any:
    """Plot `name` as a plotly `graph_objects.Figure`."""
    check_plot_names([name])
    return _plotly(name, prepare(study, trials, metric), top)


def plotly_json(name: str, study: Study, trials: Sequence[Trial], *, metric: str | None = None, top: int = 3) -> str:
    """Plot `name` as plotly JSON ({"data": ..., "layout": ...}) for a page to render with Plotly.js."""
    return str(plotly_figure(name, study, trials, metric=metric, top=top).to_json())


def write_plots(
    study: Study,
    trials: Sequence[Trial],
    out_dir: Path,
    *,
    formats: Sequence[str] = FORMATS,
    names: Sequence[str] = PLOTS,
    metric: str | None = None,
    top: int = 3,
    prefix: str = "",
) -> list[Path]:
    """Write `<out_dir>/<prefix><name>.png` and/or `.html` (plotly.js inlined, so it opens offline)
    for each plot; each file atomically, so a page that refreshes never reads half of one.
    Returns the paths written, in `names` then `formats` order."""
    check_plot_names(names)
    if unknown := [f for f in formats if f not in FORMATS]:
        raise ValueError(f"unknown format {', '.join(map(repr, unknown))}; valid formats: {', '.join(FORMATS)}")
    inp = prepare(study, trials, metric)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        for fmt in formats:
            path = out_dir / f"{prefix}{name}.{fmt}"
            if fmt == "png":
                write_atomically(path, partial(_write_png, _mpl(name, inp, top)))
            else:
                html = _plotly(name, inp, top).to_html(include_plotlyjs=True, full_html=True)
                write_atomically(path, partial(_write_bytes, html.encode()))
            paths.append(path)
    return paths


def _write_png(figure: Figure, handle: BinaryIO) -> None:
    figure.savefig(handle, format="png", dpi=DPI)


def _write_bytes(data: bytes, handle: BinaryIO) -> None:
    handle.write(data)


def _missing(error: ImportError) -> ImportError:
    return ImportError(f"plots need matplotlib and plotly ({error}); {INSTALL_HINT}")


def _title(inp: PlotInput, what: str) -> str:
    goal = "lower" if inp.goal is Goal.MINIMIZE else "higher"
    return f"{inp.study.name}: {what} ({inp.metric}, {goal} is better)"


# --- matplotlib ----------------------------------------------------------------------------------

def _mpl(name: str, inp: PlotInput, top: int) -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise _missing(error) from error
    draw: dict[str, Callable[[Figure, PlotInput, int], None]] = {
        "progress": _mpl_progress, "best": _mpl_best, "schedule": _mpl_schedule,
        "lineage": _mpl_lineage, "hyperparameters": _mpl_hyperparameters,
    }
    figure = Figure(figsize=(9, 5), layout="constrained")
    FigureCanvasAgg(figure)
    draw[name](figure, inp, top)
    return figure


def _mpl_empty(figure: Figure, title: str) -> None:
    figure.clear()
    figure.set_size_inches(9, 4)
    ax = figure.add_subplot()
    ax.text(0.5, 0.5, EMPTY_MESSAGE, ha="center", va="center", fontsize=16, transform=ax.transAxes, gid="empty")
    ax.set_axis_off()
    figure.suptitle(title)


def _mpl_integer_x(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _mpl_progress(figure: Figure, inp: PlotInput, top: int) -> None:
    data, title = progress(inp), _title(inp, "every member against training step")
    if not data.curves:
        return _mpl_empty(figure, title)
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
                    label=f"{EVENT_LABELS[event]} ({len(marks)})", **MPL_MARKERS[event])  # type: ignore[arg-type]
    ax.set(xlabel="training step", ylabel=inp.metric, title=title)
    if data.markers:
        ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)


def _mpl_best(figure: Figure, inp: PlotInput, top: int) -> None:
    data, title = best_so_far(inp), _title(inp, "best so far")
    if not data.by_step.x:
        return _mpl_empty(figure, title)
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


def _mpl_schedule(figure: Figure, inp: PlotInput, top: int) -> None:
    lines, title = schedules(inp, top), _title(inp, f"hyperparameter schedules of the {top} best trials")
    specs = parameters(inp, [h for line in lines for h in line.hparams])
    if not specs:
        return _mpl_empty(figure, title)
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


def _mpl_lineage(figure: Figure, inp: PlotInput, top: int) -> None:
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    data, title = lineage_tree(inp), _title(inp, "lineage: who warm-started from whom")
    if not data.nodes:
        return _mpl_empty(figure, title)
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
    _mpl_integer_x(ax)
    figure.legend(loc="outside lower center", ncols=3, fontsize="small", frameon=False)


def _mpl_hyperparameters(figure: Figure, inp: PlotInput, top: int) -> None:
    dists, title = distributions(inp), _title(inp, "hyperparameters per generation")
    if not dists:
        return _mpl_empty(figure, title)
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
    _mpl_integer_x(axes[-1])
    figure.suptitle(title)


# --- plotly --------------------------------------------------------------------------------------

def _plotly(name: str, inp: PlotInput, top: int) -> Any:
    try:
        import plotly.graph_objects  # noqa: F401
        import plotly.subplots  # noqa: F401
    except ImportError as error:
        raise _missing(error) from error
    for module in ("numpy", "pandas"):
        # plotly peeks at sys.modules for these without importing them, so one half imported by
        # another thread (the service's warm-up, in a process that also runs one) breaks it;
        # importing it here waits for that import to finish.
        if module in sys.modules:
            importlib.import_module(module)
    draw: dict[str, Callable[[PlotInput, int], Any]] = {
        "progress": _plotly_progress, "best": _plotly_best, "schedule": _plotly_schedule,
        "lineage": _plotly_lineage, "hyperparameters": _plotly_hyperparameters,
    }
    figure = draw[name](inp, top)
    figure.update_layout(template="plotly_white")
    return figure


def _plotly_empty(title: str) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure(layout={"title": title, "height": 400})
    figure.add_annotation(text=EMPTY_MESSAGE, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                          font={"size": 20}, name="empty")
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure


def _gaps(runs: Sequence[Sequence[Any]]) -> list[Any]:
    """Several polylines in one trace, separated by None (plotly breaks the line there)."""
    out: list[Any] = []
    for run in runs:
        out += [*run, None]
    return out


def _plotly_progress(inp: PlotInput, top: int) -> Any:
    import plotly.graph_objects as go

    data, title = progress(inp), _title(inp, "every member against training step")
    if not data.curves:
        return _plotly_empty(title)
    figure = go.Figure(layout={"title": title, "xaxis_title": "training step", "yaxis_title": inp.metric})
    for member in sorted({c.member for c in data.curves}):
        curves = [c for c in data.curves if c.member == member]
        figure.add_scatter(
            x=_gaps([c.steps for c in curves]), y=_gaps([c.values for c in curves]), mode="lines",
            name=f"member {member}", line={"color": member_colour(member)}, meta=f"member-{member}",
            hovertext=_gaps([[f"trial {c.trial_id} ({c.event.value})"] * len(c.steps) for c in curves]),
        )
    jumps = [c for c in data.curves if c.jump_from is not None]
    if jumps:
        figure.add_scatter(x=_gaps([(c.jump_from[0], c.steps[0]) for c in jumps if c.jump_from]),
                           y=_gaps([(c.jump_from[1], c.values[0]) for c in jumps if c.jump_from]),
                           mode="lines", line={"color": "#777777", "dash": "dot", "width": 1}, name="exploit jump",
                           meta="jumps", hoverinfo="skip")
    for event in MARKED_EVENTS:
        if marks := [m for m in data.markers if m.event is event]:
            figure.add_scatter(x=[m.step for m in marks], y=[m.value for m in marks], mode="markers", meta=event.value,
                               name=f"{EVENT_LABELS[event]} ({len(marks)})",
                               hovertext=[f"trial {m.trial_id}" for m in marks],
                               marker={"symbol": PLOTLY_SYMBOLS[event], "color": "black", "size": 8})
    return figure


def _plotly_best(inp: PlotInput, top: int) -> Any:
    from plotly.subplots import make_subplots

    data, title = best_so_far(inp), _title(inp, "best so far")
    if not data.by_step.x:
        return _plotly_empty(title)
    figure = make_subplots(1, 2, shared_yaxes=True, subplot_titles=("against resource", "against step"))
    for col, series in enumerate((data.by_resource, data.by_step), start=1):
        hover = [f"trial {i}" for i in series.trial_ids]
        figure.add_scatter(x=series.x, y=series.values, mode="markers", marker={"color": GREY, "size": 5},
                           name="completed trial", meta="trials", hovertext=hover, showlegend=col == 1, row=1, col=col)
        figure.add_scatter(x=series.x, y=series.best, mode="lines", name="best so far",
                           line={"shape": "hv", "color": "#1f77b4", "width": 2}, meta="best-so-far",
                           hovertext=hover, showlegend=col == 1, row=1, col=col)
    figure.update_xaxes(title_text="resource: steps trained by all completed trials", row=1, col=1)
    figure.update_xaxes(title_text="training step", row=1, col=2)
    figure.update_yaxes(title_text=inp.metric, row=1, col=1)
    figure.update_layout(title=title)
    return figure


def _plotly_schedule(inp: PlotInput, top: int) -> Any:
    from plotly.subplots import make_subplots

    lines, title = schedules(inp, top), _title(inp, f"hyperparameter schedules of the {top} best trials")
    specs = parameters(inp, [h for line in lines for h in line.hparams])
    if not specs:
        return _plotly_empty(title)
    figure = make_subplots(len(specs), 1, shared_xaxes=True, vertical_spacing=0.06)
    for row, spec in enumerate(specs, start=1):
        for line in lines:
            xs, ys = line.xy(spec.name)
            style = {"shape": "hv", "color": member_colour(line.rank), "width": max(1.0, 3 - 0.6 * line.rank)}
            figure.add_scatter(x=xs, y=ys, mode="lines", line=style,
                               name=f"#{line.rank + 1}: trial {line.trial_id}", legendgroup=str(line.trial_id),
                               meta=f"schedule-{line.trial_id}-{spec.name}", showlegend=row == 1, row=row, col=1)
        axis: dict[str, Any] = {"title_text": spec.name}
        if spec.type is ParameterType.CATEGORICAL:
            axis |= {"type": "category", "categoryorder": "array", "categoryarray": [str(v) for v in spec.values]}
        elif spec.scale is Scale.LOG:
            axis |= {"type": "log"}
        figure.update_yaxes(row=row, col=1, **axis)
    figure.update_xaxes(title_text="training step", row=len(specs), col=1)
    figure.update_layout(title=title, height=150 + 220 * len(specs))
    return figure


def _plotly_lineage(inp: PlotInput, top: int) -> Any:
    import plotly.graph_objects as go

    data, title = lineage_tree(inp), _title(inp, "lineage: who warm-started from whom")
    if not data.nodes:
        return _plotly_empty(title)
    figure = go.Figure()
    for exploit in (False, True):
        edges = [e for e in data.edges if e.exploit is exploit]
        figure.add_scatter(x=_gaps([e.x for e in edges]), y=_gaps([e.y for e in edges]), mode="lines",
                           hoverinfo="skip", meta=f"edges-{'exploit' if exploit else 'continue'}",
                           name="exploit" if exploit else "warm start",
                           line={"color": "#555555" if exploit else "#999999", "width": 1,
                                 "dash": "dash" if exploit else "solid"})
    coloured = [n for n in data.nodes if n.value is not None]
    grey = [n for n in data.nodes if n.value is None]
    low, high = value_range([n.value for n in coloured])
    figure.add_scatter(
        x=[n.generation for n in coloured], y=[n.y for n in coloured], mode="markers", meta="nodes", name="trial",
        hovertext=[f"trial {n.trial_id}: {inp.metric} {n.value:.4g}" for n in coloured],
        marker={"color": [n.value for n in coloured], "colorscale": "Viridis", "cmin": low, "cmax": high, "size": 10,
                "reversescale": inp.goal is Goal.MINIMIZE, "colorbar": {"title": inp.metric},
                "line": {"color": "black", "width": 0.5}},
    )
    figure.add_scatter(x=[n.generation for n in grey], y=[n.y for n in grey], mode="markers",
                       meta="nodes-without-metric", name="no metric (diverged, failed, running)",
                       marker={"color": GREY, "size": 10},
                       hovertext=[f"trial {n.trial_id}: {n.status.value}" for n in grey])
    best = next((n for n in data.nodes if n.trial_id == data.best_id), None)
    if best is not None:
        figure.add_scatter(x=[best.generation], y=[best.y], mode="markers", meta="best",
                           name=f"best: trial {best.trial_id}", marker={"size": 20, "color": "rgba(0,0,0,0)",
                           "line": {"color": "red", "width": 2}})
    figure.update_layout(title=title, xaxis_title="generation", yaxis_title="member",
                         height=min(1200, 250 + 30 * data.members), legend={"orientation": "h", "y": -0.2})
    figure.update_yaxes(autorange="reversed", dtick=1)
    figure.update_xaxes(dtick=1)
    return figure


def _plotly_hyperparameters(inp: PlotInput, top: int) -> Any:
    from plotly.subplots import make_subplots

    dists, title = distributions(inp), _title(inp, "hyperparameters per generation")
    if not dists:
        return _plotly_empty(title)
    figure = make_subplots(len(dists), 1, shared_xaxes=True, vertical_spacing=0.06)
    for row, d in enumerate(dists, start=1):
        if d.counts is not None:
            for k, (category, counts) in enumerate(d.counts.items()):
                figure.add_bar(x=list(d.generations), y=list(counts), name=f"{d.spec.name}={category}", row=row, col=1,
                               marker={"color": member_colour(k)}, meta=f"hparam-{d.spec.name}-{category}")
            figure.update_yaxes(title_text=f"{d.spec.name} (trials)", row=row, col=1)
            continue
        figure.add_scatter(x=[p[0] for p in d.points], y=[p[1] for p in d.points], mode="markers", row=row, col=1,
                           marker={"size": 5, "opacity": 0.6, "color": "#1f77b4"}, name=d.spec.name,
                           meta=f"hparam-{d.spec.name}", hovertext=[f"trial {p[2]}" for p in d.points])
        figure.add_scatter(x=list(d.generations), y=list(d.medians), mode="lines+markers", line={"color": "black"},
                           marker={"symbol": "line-ew-open", "size": 14, "line": {"width": 2, "color": "black"}},
                           name=f"{d.spec.name} median", meta=f"median-{d.spec.name}", row=row, col=1)
        scale = "log" if d.spec.scale is Scale.LOG else "linear"
        figure.update_yaxes(title_text=d.spec.name, type=scale, row=row, col=1)
    figure.update_xaxes(title_text="generation", dtick=1, row=len(dists), col=1)
    figure.update_layout(title=title, barmode="stack", height=150 + 220 * len(dists))
    return figure
