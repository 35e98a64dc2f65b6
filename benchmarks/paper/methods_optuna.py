"""Optuna's samplers and pruners at the same resource, as the package ships them.

TPE, CMA-ES and GP propose `budget.members` trials of `budget.steps_per_member` steps each (the
budget's total). With five trials a sampler's default startup (10 random trials for TPE and GP)
would make it random search, so they start modelling after `members // 2` random trials; CMA-ES
keeps its defaults. Successive halving and Hyperband are pruners: random configurations report
the validation objective after every interval and are pruned by the pruner; trials start until
the trained steps add up to the budget's total (the last one is cut where the budget ends).

Two-objective (PARETO) tasks: TPE and GP optimize both objectives; CMA-ES and the pruners are
single-objective in Optuna, so they optimize the first objective, and the row's note says so. A
LEXICOGRAPHIC task's later objectives only break ties, so Optuna optimizes its first one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path

import optuna

from benchmarks.paper.adapters import train_static
from benchmarks.paper.records import EventLog, MethodOutcome
from benchmarks.paper.tasks.base import Budget, Task
from pbt_service.core.search_space import is_active, topological_order
from worker_client import Comparison, Goal, ParameterType, ParamValue, Scale

SamplerFactory = Callable[[int, Budget], optuna.samplers.BaseSampler]


def suggest(trial: optuna.Trial, task: Task) -> dict[str, ParamValue]:
    """The task's search space, define-by-run: a conditional parameter is asked only when active."""
    hparams: dict[str, ParamValue] = {}
    for spec in topological_order(task.parameters):
        if not is_active(spec, hparams):
            continue
        if spec.type is ParameterType.FLOAT:
            hparams[spec.name] = trial.suggest_float(spec.name, spec.low, spec.high, log=spec.scale is Scale.LOG)
        elif spec.type is ParameterType.INTEGER:
            hparams[spec.name] = trial.suggest_int(spec.name, int(spec.low), int(spec.high),
                                                   log=spec.scale is Scale.LOG)
        elif spec.type is ParameterType.DISCRETE:
            hparams[spec.name] = float(trial.suggest_categorical(spec.name, [float(v) for v in spec.values]))
        else:
            hparams[spec.name] = str(trial.suggest_categorical(spec.name, [str(v) for v in spec.values]))
    return hparams


def _direction(goal: Goal) -> optuna.study.StudyDirection:
    return optuna.study.StudyDirection.MAXIMIZE if goal is Goal.MAXIMIZE else optuna.study.StudyDirection.MINIMIZE


def _value(metrics: Mapping[str, float], metric: str, goal: Goal) -> float:
    """The objective for Optuna; a diverged run is the worst value rather than NaN (which Optuna
    would record as a failed trial and learn nothing from)."""
    value = metrics.get(metric, math.nan)
    if math.isfinite(value):
        return float(value)
    return -math.inf if goal is Goal.MAXIMIZE else math.inf


def run_sampler(
    factory: SamplerFactory, multi_objective: bool, task: Task, budget: Budget, seed: int, workdir: Path
) -> MethodOutcome:
    """`budget.members` trials proposed by the sampler, each trained the whole `steps_per_member`."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    pareto = task.comparison is Comparison.PARETO
    objectives = task.objectives if multi_objective and pareto else task.objectives[:1]
    study = optuna.create_study(directions=[_direction(o.goal) for o in objectives], sampler=factory(seed, budget))
    log = EventLog()

    def objective(trial: optuna.Trial) -> float | list[float]:
        metrics = train_static(task, suggest(trial, task), budget, seed, f"optuna-{trial.number}", log)
        values = [_value(metrics, o.metric, o.goal) for o in objectives]
        return values if len(values) > 1 else values[0]

    study.optimize(objective, n_trials=budget.members)
    note = f"optimizes {objectives[0].metric} only" if pareto and len(objectives) == 1 else ""
    return MethodOutcome(log.events(), log.trained, len(study.trials), note)


def run_pruner(
    pruner: optuna.pruners.BasePruner, task: Task, budget: Budget, seed: int, workdir: Path
) -> MethodOutcome:
    """Random configurations under `pruner` until the trained steps reach the budget's total."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    first = task.objectives[0]
    study = optuna.create_study(direction=_direction(first.goal), sampler=optuna.samplers.RandomSampler(seed=seed),
                                pruner=pruner)
    log = EventLog()

    def left() -> int:
        return budget.total_steps - log.trained

    def objective(trial: optuna.Trial) -> float:
        def report(index: int, metrics: Mapping[str, float]) -> None:
            trial.report(_value(metrics, first.metric, first.goal), index + 1)
            if trial.should_prune():
                raise optuna.TrialPruned()

        metrics = train_static(task, suggest(trial, task), budget, seed, f"optuna-{trial.number}", log, report, left)
        return _value(metrics, first.metric, first.goal)

    while left() > 0:
        study.optimize(objective, n_trials=1)
    pruned = sum(1 for t in study.trials if t.state is optuna.trial.TrialState.PRUNED)
    note = f"random sampler; {pruned} of {len(study.trials)} trials pruned"
    if task.comparison is Comparison.PARETO:
        note += f"; optimizes {first.metric} only"
    return MethodOutcome(log.events(), log.trained, len(study.trials), note)


def tpe(seed: int, budget: Budget) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, budget.members // 2))


def cmaes(seed: int, budget: Budget) -> optuna.samplers.BaseSampler:
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


def gp(seed: int, budget: Budget) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=max(1, budget.members // 2),
                                     warn_independent_sampling=False)


def successive_halving(budget: Budget) -> optuna.pruners.BasePruner:
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)


def hyperband(budget: Budget) -> optuna.pruners.BasePruner:
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=budget.intervals, reduction_factor=3)


def missing_cmaes() -> str | None:
    """Why CMA-ES cannot run here, or None."""
    try:
        import cmaes  # noqa: F401
    except ImportError:
        return "CMA-ES skipped: the `cmaes` package is not installed (pip install '.[bench]')"
    return None


def missing_gp() -> str | None:
    """Why the GP sampler cannot run here, or None (it needs torch and scipy)."""
    try:
        import scipy  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return "GP skipped: Optuna's GPSampler needs torch and scipy (pip install '.[bench]')"
    return None
