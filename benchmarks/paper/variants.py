"""The PBT rows: which study settings each row runs, and the population, generations and steps per
trial that spend the task's budget. One function per concern, so a new setting is one entry here.

"PBT 5x5" is the paper's default (binary tournament, opponents from the past k generations,
perturb ×0.8/×1.2) with 5 workers and population 5; "PBT 5x20" runs population 20 on the same 5
workers in budget mode. The variant rows each change one setting of PBT 5x5 (the default values
perturb, tournament and past are PBT 5x5 itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.paper.tasks.base import Budget
from worker_client import (
    AlgorithmConfig,
    ExploreConfig,
    ExploreStrategy,
    OpponentStrategy,
    SelectionConfig,
    SelectionStrategy,
)

WORKERS = 5
"""Worker threads of every PBT row (the paper's 5 workers)."""


@dataclass(frozen=True)
class PbtVariant:
    """A PBT row: its population and the settings it changes."""

    name: str
    population: int
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    explore: ExploreConfig = field(default_factory=ExploreConfig)
    description: str = ""


VARIANTS: tuple[PbtVariant, ...] = (
    PbtVariant("pbt-5x5", 5,
               description="5 workers, population 5, the service's default settings (tournament, opponents past, "
                           "perturb)"),
    PbtVariant("pbt-5x20", 20, description="5 workers, population 20 (budget mode)"),
    PbtVariant("pbt-resample", 5, explore=ExploreConfig(ExploreStrategy.RESAMPLE),
               description="PBT 5x5 with explore = resample (p 0.25)"),
    PbtVariant("pbt-pb2", 5, explore=ExploreConfig(ExploreStrategy.PB2), description="PBT 5x5 with explore = pb2"),
    PbtVariant("pbt-truncation", 5, selection=SelectionConfig(SelectionStrategy.TRUNCATION),
               description="PBT 5x5 with selection = truncation (quantile 0.25)"),
    PbtVariant("pbt-opp-same", 5, selection=SelectionConfig(opponents=OpponentStrategy.SAME),
               description="PBT 5x5 with opponents = same generation"),
    PbtVariant("pbt-opp-any", 5, selection=SelectionConfig(opponents=OpponentStrategy.ANY),
               description="PBT 5x5 with opponents = any generation"),
)

OPPONENT_ROWS = {"past": "pbt-5x5", "same": "pbt-opp-same", "any": "pbt-opp-any"}
"""Figure 13's bars: opponent strategy -> the row that runs it."""


@dataclass(frozen=True)
class PbtPlan:
    """How a PBT row spends the budget: `generations` × `population` trials of `steps_per_trial`."""

    generations: int
    steps_per_trial: int

    def total_steps(self, population: int) -> int:
        return self.generations * population * self.steps_per_trial


def schedule_for(budget: Budget, population: int) -> PbtPlan:
    """Generations and steps per trial so that population × generations × steps ≈ total steps:
    the budget's interval and intervals when the population is the budget's, else the plan of at
    least two generations closest to the total (ties: closest to the budget's number of
    generations per member)."""
    if population == budget.members:
        return PbtPlan(budget.intervals, budget.interval)
    target = budget.intervals * budget.members / population
    plans = [PbtPlan(g, max(1, round(budget.total_steps / (population * g))))
             for g in range(2, 2 * budget.intervals + 1)]
    return min(plans, key=lambda p: (abs(p.total_steps(population) - budget.total_steps), abs(p.generations - target)))


def algorithm_config(variant: PbtVariant, budget: Budget, seed: int) -> AlgorithmConfig:
    """The study's algorithm settings for one run of `variant`."""
    plan = schedule_for(budget, variant.population)
    return AlgorithmConfig(
        population_size=variant.population,
        max_generations=plan.generations,
        steps_per_trial=plan.steps_per_trial,
        seed=seed,
        selection=variant.selection,
        explore=variant.explore,
    )
