"""Our PBT through the real service: a `LocalService` (the gRPC server on a fresh SQLite file), the
study created with `PbtClient.create_study`, trials trained by `run_workers` threads running the
task's `ServiceAdapter`. Nothing is simulated: the suggestions, the selection and the lineages are
the service's.
"""

from __future__ import annotations

import logging
from pathlib import Path

from benchmarks.paper.adapters import ServiceAdapter
from benchmarks.paper.records import EventLog, MethodOutcome
from benchmarks.paper.tasks.base import Budget, Task
from benchmarks.paper.variants import WORKERS, PbtVariant, algorithm_config
from pbt_service.local import LocalService
from worker_client import PbtClient, StudyConfig, run_workers


def run_pbt(variant: PbtVariant, task: Task, budget: Budget, seed: int, workdir: Path) -> MethodOutcome:
    """One PBT run of `variant` on `task`; the study's seed is the run's seed."""
    logging.getLogger("worker_client").setLevel(logging.WARNING)
    log = EventLog()
    adapter = ServiceAdapter(task, seed, log, budget.total_steps)
    config = StudyConfig(
        parameters=task.parameters,
        objectives=task.objectives,
        comparison=task.comparison,
        algorithm=algorithm_config(variant, budget, seed),
    )
    with LocalService(f"sqlite:///{workdir / 'pbt.db'}") as service, PbtClient(service.address) as client:
        study = client.create_study(f"{task.name}-{variant.name}-{seed}", config)
        note = _settings_note(config, study.config)
        trials = run_workers(service.address, study.name, adapter.train, adapter.evaluate, WORKERS, workdir / "runs")
    algo = config.algorithm
    plan = f"{algo.population_size} members x {algo.max_generations} generations x {algo.steps_per_trial} steps"
    if adapter.spent_in_generation is not None:
        plan += (f"; budget spent in generation {adapter.spent_in_generation} (children catching up with their "
                 "generation train more than one interval)")
    return MethodOutcome(log.events(), log.trained, trials, "; ".join(filter(None, [plan, note])))


def _settings_note(asked: StudyConfig, stored: StudyConfig) -> str:
    """Says so when the service did not keep a setting the row is about (an older service)."""
    lost = [name for name in ("selection", "explore")
            if getattr(asked.algorithm, name) != getattr(stored.algorithm, name)]
    return f"the service did not keep: {', '.join(lost)}" if lost else ""
