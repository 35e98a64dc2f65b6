"""The plots of a PBT study as PNG (matplotlib) and interactive HTML or JSON (plotly).

"progress": the metric of every member against training step, exploits and explores marked (the
picture of a PBT run); "best": the best metric so far against resource and against step (paper
figures 4 and 6); "schedule": the hyperparameter schedules of the best trials (figure 7);
"lineage": who warm-started from whom, coloured by fitness; "hyperparameters": each
hyperparameter's distribution per generation.

Pure functions of a study and its trials (`PbtClient.get_study`, `PbtClient.list_trials`). The
numbers come from `plot_data`, so both backends (`plots_matplotlib`, `plots_plotly`) show the same
thing. Each drawn element carries a stable id (matplotlib `gid`, plotly `meta`): "exploit",
"explore", "restart", "best-so-far", "nodes", "edges-continue", "edges-exploit",
"schedule-<trial>-<param>", ... for tests and pages. matplotlib and plotly are imported only when a
figure is drawn: the base client installs without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pbt_service.core.types import Study, Trial
from worker_client.atomic import write_atomically, write_bytes_atomically
from worker_client.results import plots_matplotlib, plots_plotly
from worker_client.results.plot_data import prepare
from worker_client.results.plot_style import INSTALL_HINT

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "FORMATS",
    "INSTALL_HINT",
    "PLOTLY_JS",
    "PLOTS",
    "check_plot_names",
    "matplotlib_figure",
    "plotly_figure",
    "plotly_json",
    "write_plots",
]

PLOTS: tuple[str, ...] = ("progress", "best", "schedule", "lineage", "hyperparameters")
FORMATS: tuple[str, ...] = ("png", "html")
DPI = 100
PLOTLY_JS = "plotly.min.js"
"""The plotly.js bundle the HTML files load from their own folder (the name plotly's
`include_plotlyjs="directory"` writes into them)."""


def check_plot_names(names: Sequence[str]) -> None:
    """Raises ValueError naming the valid plots when any of `names` is not one."""
    if unknown := [n for n in names if n not in PLOTS]:
        raise ValueError(f"unknown plot {', '.join(map(repr, unknown))}; valid plots: {', '.join(PLOTS)}")


def matplotlib_figure(
    name: str, study: Study, trials: Sequence[Trial], *, metric: str | None = None, top: int = 3
) -> Figure:
    """Plot `name` as a matplotlib Figure (no pyplot: no display, no global state)."""
    check_plot_names([name])
    return plots_matplotlib.draw(name, prepare(study, trials, metric), top)


def plotly_figure(name: str, study: Study, trials: Sequence[Trial], *, metric: str | None = None, top: int = 3) -> Any:
    """Plot `name` as a plotly `graph_objects.Figure`."""
    check_plot_names([name])
    return plots_plotly.draw(name, prepare(study, trials, metric), top)


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
    """Write `<out_dir>/<prefix><name>.png` and/or `.html` for each plot. The HTML files share one
    plotly.js, `<out_dir>/plotly.min.js` (written first, whenever any HTML is, so a page never
    loads an older one), and load it by relative path: the folder opens offline, wherever it is
    copied. Each file is written atomically, so a page that refreshes never reads half of one.
    Returns the paths written: plotly.min.js first when written, then the plots in `names` then
    `formats` order."""
    check_plot_names(names)
    if unknown := [f for f in formats if f not in FORMATS]:
        raise ValueError(f"unknown format {', '.join(map(repr, unknown))}; valid formats: {', '.join(FORMATS)}")
    inp = prepare(study, trials, metric)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    if "html" in formats and names:
        paths.append(write_bytes_atomically(out_dir / PLOTLY_JS, plots_plotly.plotly_js().encode()))
    for name in names:
        for fmt in formats:
            path = out_dir / f"{prefix}{name}.{fmt}"
            if fmt == "png":
                write_atomically(path, partial(_write_png, plots_matplotlib.draw(name, inp, top)))
            else:
                html = plots_plotly.draw(name, inp, top).to_html(include_plotlyjs="directory", full_html=True)
                write_bytes_atomically(path, html.encode())
            paths.append(path)
    return paths


def _write_png(figure: Figure, handle: BinaryIO) -> None:
    figure.savefig(handle, format="png", dpi=DPI)
