"""The lineage plot's layout: the warm-start tree of a study, a node per trial at (generation,
member row) and an edge from every child to its parent. Part of `plot_data`, which re-exports it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pbt_service.core.types import Trial, TrialStatus

if TYPE_CHECKING:
    from worker_client.results.plot_data import PlotInput


@dataclass(frozen=True)
class Node:
    trial_id: int
    generation: int
    y: float
    value: float | None
    """The final measurement's metric; None when diverged, failed, stopped or still running."""
    status: TrialStatus


@dataclass(frozen=True)
class Edge:
    child: int
    parent: int
    x: tuple[float, float]
    y: tuple[float, float]
    exploit: bool


@dataclass(frozen=True)
class LineageData:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    best_id: int | None
    members: int


def lineage_tree(inp: PlotInput) -> LineageData:
    """x = generation, y = member row (trials sharing a row and a generation — a failed child and
    its replacement — spread within the row); an edge from every child to its parent."""
    cells: dict[tuple[int, int], list[Trial]] = defaultdict(list)
    for t in inp.trials:
        cells[(t.generation, inp.members[t.id])].append(t)
    y: dict[int, float] = {}
    for (_, row), group in cells.items():
        gap = min(0.3, 0.8 / len(group))
        for k, t in enumerate(group):
            y[t.id] = row + (k - (len(group) - 1) / 2) * gap
    nodes = tuple(Node(t.id, t.generation, y[t.id], inp.final_value(t), t.status) for t in inp.trials)
    edges = tuple(
        Edge(t.id, p.id, (float(p.generation), float(t.generation)), (y[p.id], y[t.id]),
             inp.members[p.id] != inp.members[t.id])
        for t in inp.trials
        if t.parent_trial_id is not None and (p := inp.by_id.get(t.parent_trial_id)) is not None
    )
    best_id = inp.ranking[0].id if inp.ranking else None
    return LineageData(nodes, edges, best_id, max(inp.members.values(), default=-1) + 1)


def value_range(values: Sequence[float | None]) -> tuple[float, float]:
    """The colour scale's range: the finite values' span, widened when they are all equal."""
    finite = [v for v in values if v is not None]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    return (low, high) if high > low else (low - 0.5, high + 0.5)
