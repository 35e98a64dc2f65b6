"""The PBT plots drawn with plotly, for `plots`: a `graph_objects.Figure`, each trace carrying a
stable `meta`, and the plotly.js bundle that HTML files load. plotly is imported when a figure is
drawn, so importing this module needs none."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

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
from worker_client.results.plot_distributions import distributions, parameters
from worker_client.results.plot_style import (
    EVENT_LABELS,
    GREY,
    MARKED_EVENTS,
    member_colour,
    missing_library,
    plot_title,
)

SYMBOLS = {Event.EXPLOIT: "triangle-up", Event.EXPLORE: "circle-open", Event.RESTART: "x"}


def draw(name: str, inp: PlotInput, top: int) -> Any:
    """Plot `name` (one of `plots.PLOTS`) as a plotly `graph_objects.Figure`."""
    _import_plotly()
    plots: dict[str, Callable[[PlotInput, int], Any]] = {
        "progress": _progress, "best": _best, "schedule": _schedule,
        "lineage": _lineage, "hyperparameters": _hyperparameters,
    }
    figure = plots[name](inp, top)
    figure.update_layout(template="plotly_white")
    return figure


def plotly_js() -> str:
    """The minified plotly.js bundle (about 4.8 MB) of the installed plotly: what a page written with
    `to_html(include_plotlyjs="directory")` loads from `plotly.min.js` beside it."""
    _import_plotly()
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def _import_plotly() -> None:
    try:
        import plotly.graph_objects  # noqa: F401
        import plotly.subplots  # noqa: F401
    except ImportError as error:
        raise missing_library(error) from error
    for module in ("numpy", "pandas"):
        # plotly peeks at sys.modules for these without importing them, so one half imported by
        # another thread (the service's warm-up, in a process that also runs one) breaks it;
        # importing it here waits for that import to finish.
        if module in sys.modules:
            importlib.import_module(module)


def _empty(title: str) -> Any:
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


def _progress(inp: PlotInput, top: int) -> Any:
    import plotly.graph_objects as go

    data, title = progress(inp), plot_title(inp, "progress", top)
    if not data.curves:
        return _empty(title)
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
                               marker={"symbol": SYMBOLS[event], "color": "black", "size": 8})
    return figure


def _best(inp: PlotInput, top: int) -> Any:
    from plotly.subplots import make_subplots

    data, title = best_so_far(inp), plot_title(inp, "best", top)
    if not data.by_step.x:
        return _empty(title)
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


def _schedule(inp: PlotInput, top: int) -> Any:
    from plotly.subplots import make_subplots

    lines, title = schedules(inp, top), plot_title(inp, "schedule", top)
    specs = parameters(inp, [h for line in lines for h in line.hparams])
    if not specs:
        return _empty(title)
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


def _lineage(inp: PlotInput, top: int) -> Any:
    import plotly.graph_objects as go

    data, title = lineage_tree(inp), plot_title(inp, "lineage", top)
    if not data.nodes:
        return _empty(title)
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


def _hyperparameters(inp: PlotInput, top: int) -> Any:
    from plotly.subplots import make_subplots

    dists, title = distributions(inp), plot_title(inp, "hyperparameters", top)
    if not dists:
        return _empty(title)
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
