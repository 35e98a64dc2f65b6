"""Every benchmark task by name, the cheap ones first (so `--quick` and partial runs reach the
expensive ones last).

    >>> from benchmarks.paper.tasks.registry import get
    >>> get("hard_quadratic").budget(quick=False).total_steps
    20000
"""

from __future__ import annotations

from benchmarks.paper.tasks.base import Task
from benchmarks.paper.tasks.digits import DigitsTask
from benchmarks.paper.tasks.hard_quadratic import HardQuadraticTask
from benchmarks.paper.tasks.noisy_quadratic import NoisyQuadraticTask
from benchmarks.paper.tasks.two_objective import TwoObjectiveTask
from benchmarks.paper.tasks.wavenet import WaveNetTask

TASKS: dict[str, Task] = {
    task.name: task
    for task in (NoisyQuadraticTask(), TwoObjectiveTask(), HardQuadraticTask(), DigitsTask(), WaveNetTask())
}


class UnknownTaskError(KeyError):
    """A task name that is not in `TASKS`."""


def get(name: str) -> Task:
    """The task called `name`. Raises UnknownTaskError (a KeyError) naming the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None
