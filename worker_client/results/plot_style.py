"""How the PBT plots look, shared by both backends (`plots_matplotlib`, `plots_plotly`) so a figure
reads the same in either: member colours, the marked events and their labels, titles, the grey of
unranked trials, and the error naming the extra to install. Kept apart from `plot_data`, which
computes what the plots show."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pbt_service.core.types import Goal
from worker_client.results.events import Event

if TYPE_CHECKING:
    from worker_client.results.plot_data import PlotInput

MEMBER_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)
"""matplotlib's tab10, so a member has the same colour in both backends; repeats past ten members."""
MARKED_EVENTS = (Event.EXPLOIT, Event.EXPLORE, Event.RESTART)
EVENT_LABELS = {
    Event.EXPLOIT: "exploit: copied a better member",
    Event.EXPLORE: "explore: new hyperparameters",
    Event.RESTART: "restart: fresh line",
}
GREY = "#bbbbbb"
"""Trials without a metric, and the completed trials behind the best-so-far line."""
INSTALL_HINT = "pip install 'pbt-service[results]' (from a clone: pip install '.[results]')"
TITLES = {
    "progress": "every member against training step",
    "best": "best so far",
    "schedule": "hyperparameter schedules of the {top} best trials",
    "lineage": "lineage: who warm-started from whom",
    "hyperparameters": "hyperparameters per generation",
}


def member_colour(member: int) -> str:
    return MEMBER_COLOURS[member % len(MEMBER_COLOURS)]


def missing_library(error: ImportError) -> ImportError:
    """What drawing raises when matplotlib or plotly is not installed: it names the extra."""
    return ImportError(f"plots need matplotlib and plotly ({error}); {INSTALL_HINT}")


def plot_title(inp: PlotInput, name: str, top: int) -> str:
    """The title of plot `name` (the same in both backends)."""
    goal = "lower" if inp.goal is Goal.MINIMIZE else "higher"
    return f"{inp.study.name}: {TITLES[name].format(top=top)} ({inp.metric}, {goal} is better)"
