"""Every row of the tables: its name, what it is, the function that runs it, and why it cannot run
here when a package is missing (the row is then shown as skipped with that note, never dropped).

Methods run as `run(task, budget, seed, workdir) -> MethodOutcome`. `family` groups rows in the
tables and tells the runner which runs need Ray's process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from benchmarks.paper import methods_optuna, methods_static
from benchmarks.paper.records import MethodOutcome
from benchmarks.paper.tasks.base import Budget, Task
from benchmarks.paper.variants import VARIANTS, PbtVariant

Run = Callable[[Task, Budget, int, Path], MethodOutcome]

VARIANT_TASKS = ("noisy_quadratic", "hard_quadratic")
"""In the full suite the PBT variant rows (one setting changed) run on these tasks only, to fit the
hour; `--quick` runs them on every task."""

PB2_FULL_SEEDS = 2
"""Ray Tune's PB2 refits its Gaussian processes (scikit-learn's, with a length search) at every
exploit: 30-95 s a run on this machine at the full budgets, against 10-20 s for Ray's PBT. In the
full suite it runs on 2 seeds, to fit the hour; `--seeds N` runs N for every row."""


@dataclass(frozen=True)
class Method:
    name: str
    family: str
    description: str
    run: Run
    missing: Callable[[], str | None] = lambda: None
    full_tasks: tuple[str, ...] | None = None
    prepare: Callable[[], None] = lambda: None
    """Run before the clock starts (starting Ray is not part of a run's wall time)."""
    full_seeds: int | None = None
    """Seeds in the full suite when fewer than the others', to fit the hour (None: all)."""


def _pbt(variant: PbtVariant, task: Task, budget: Budget, seed: int, workdir: Path) -> MethodOutcome:
    from benchmarks.paper.methods_ours import run_pbt  # imports the server only where it runs

    return run_pbt(variant, task, budget, seed, workdir)


def _ray(pb2: bool, task: Task, budget: Budget, seed: int, workdir: Path) -> MethodOutcome:
    from benchmarks.paper.methods_ray import run_ray

    return run_ray(pb2, task, budget, seed, workdir)


def _start_ray() -> None:
    from benchmarks.paper.methods_ray import ensure_ray

    ensure_ray()


def _missing_ray() -> str | None:
    from benchmarks.paper.methods_ray import missing_ray

    return missing_ray()


def _missing_pb2() -> str | None:
    from benchmarks.paper.methods_ray import missing_pb2

    return missing_pb2()


def _methods() -> tuple[Method, ...]:
    ours = tuple(
        Method(v.name, "ours", v.description, partial(_pbt, v),
               full_tasks=None if v.name in ("pbt-5x5", "pbt-5x20") else VARIANT_TASKS)
        for v in VARIANTS
    )
    return (
        *ours,
        Method("grid", "baseline", "budget.members learning rates log-spaced over the range, others at midpoints",
               methods_static.run_grid),
        Method("random", "baseline", "random search: budget.members trials from the prior (log-uniform for LOG)",
               methods_static.run_random),
        Method("optuna-tpe", "optuna", "Optuna TPESampler: budget.members trials",
               partial(methods_optuna.run_sampler, methods_optuna.tpe, True)),
        Method("optuna-cmaes", "optuna", "Optuna CmaEsSampler: budget.members trials",
               partial(methods_optuna.run_sampler, methods_optuna.cmaes, False), methods_optuna.missing_cmaes),
        Method("optuna-gp", "optuna", "Optuna GPSampler: budget.members trials",
               partial(methods_optuna.run_sampler, methods_optuna.gp, True), methods_optuna.missing_gp),
        Method("optuna-sha", "optuna", "Optuna SuccessiveHalvingPruner (r=3), random configurations",
               lambda task, budget, seed, workdir: methods_optuna.run_pruner(
                   methods_optuna.successive_halving(budget), task, budget, seed, workdir)),
        Method("optuna-hyperband", "optuna", "Optuna HyperbandPruner (r=3), random configurations",
               lambda task, budget, seed, workdir: methods_optuna.run_pruner(
                   methods_optuna.hyperband(budget), task, budget, seed, workdir)),
        Method("ray-pbt", "ray", "Ray Tune PopulationBasedTraining: budget.members trials, perturbation every "
               "interval", partial(_ray, False), _missing_ray, prepare=_start_ray),
        Method("ray-pb2", "ray", "Ray Tune PB2: budget.members trials, perturbation every interval",
               partial(_ray, True), _missing_pb2, prepare=_start_ray, full_seeds=PB2_FULL_SEEDS),
    )


METHODS: dict[str, Method] = {m.name: m for m in _methods()}
