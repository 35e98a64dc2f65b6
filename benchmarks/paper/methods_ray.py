"""The peer rows: Ray Tune's `PopulationBasedTraining` and `PB2` schedulers on the same task code
and budget, with Ray's own defaults (quantile 0.25, resample probability 0.25, factors 1.2/0.8).

A function trainable trains `budget.interval` steps per iteration, evaluates, and reports with a
checkpoint folder (the task's state and the lineage's schedule), from which Ray's exploit
restores. `budget.members` trials start from the prior; perturbation every `budget.interval`
steps (`time_attr` is the model's global step). A trial stops at `steps_per_member` steps and the
whole run when the steps trained by all trials add up to the budget's total.

PB2 models continuous parameters only: a LOG float is searched as its log10 (Ray's bounds are
linear), and categorical or discrete parameters keep their initial random values. Ray has no
conditional parameters: every parameter is sampled and the trainable drops inactive ones. Ray's
schedulers rank one metric: a multi-objective task is ranked by its first objective.

Ray is started once per process with 2 CPUs (`ensure_ray`); the runner runs every Ray run in one
process of its own, after the others, so Ray's actors never share the cores with another run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.paper.adapters import active_hparams, derived_seed, extend, load_checkpoint, metrics_of, save_checkpoint
from benchmarks.paper.records import Event, EventLog, MethodOutcome, Schedule
from benchmarks.paper.tasks.base import Budget, Task
from worker_client import Comparison, Goal, ParameterType, ParamValue, Scale

MODEL_FOLDER = "model"
RAY_CPUS = 2
LOG10 = "log10_"


def missing_ray() -> str | None:
    """Why Ray Tune's PBT cannot run here, or None."""
    try:
        import ray.tune  # noqa: F401
    except ImportError:
        return "Ray Tune skipped: `ray[tune]` is not installed (pip install '.[bench]')"
    return None


def missing_pb2() -> str | None:
    """Why Ray Tune's PB2 cannot run here, or None (its Gaussian process is scikit-learn's)."""
    missing = missing_ray()
    if missing:
        return missing
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return "Ray PB2 skipped: it needs scikit-learn (pip install scikit-learn)"
    return None


def ensure_ray() -> None:
    """Starts a local Ray with 2 CPUs once per process, quiet, logs in a temporary folder."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "1000")
    root = str(Path(__file__).resolve().parents[2])
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=RAY_CPUS, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 _temp_dir=tempfile.mkdtemp(prefix="ray-"))


def decode(task: Task, config: Mapping[str, Any]) -> dict[str, ParamValue]:
    """The task's hyperparameters from Ray's config: log10 keys undone, values clipped to their
    ranges (Ray's perturbation may leave them), inactive conditional ones dropped."""
    hparams: dict[str, ParamValue] = {}
    for spec in task.parameters:
        if LOG10 + spec.name in config:
            value: Any = 10.0 ** float(config[LOG10 + spec.name])
        elif spec.name in config:
            value = config[spec.name]
        else:
            continue
        if spec.type is ParameterType.FLOAT:
            hparams[spec.name] = float(min(max(float(value), spec.low), spec.high))
        elif spec.type is ParameterType.INTEGER:
            hparams[spec.name] = int(min(max(round(float(value)), spec.low), spec.high))
        elif spec.type is ParameterType.DISCRETE:
            hparams[spec.name] = float(value)
        else:
            hparams[spec.name] = str(value)
    return active_hparams(task.parameters, hparams)


def search_space(task: Task, log10_keys: bool) -> dict[str, Any]:
    """Ray's domains for the task's parameters; LOG floats as log10 when `log10_keys` (PB2)."""
    from ray import tune

    space: dict[str, Any] = {}
    for spec in task.parameters:
        if spec.type is ParameterType.FLOAT and spec.scale is Scale.LOG:
            if log10_keys:
                space[LOG10 + spec.name] = tune.uniform(math.log10(spec.low), math.log10(spec.high))
            else:
                space[spec.name] = tune.loguniform(spec.low, spec.high)
        elif spec.type is ParameterType.FLOAT:
            space[spec.name] = tune.uniform(spec.low, spec.high)
        elif spec.type is ParameterType.INTEGER:
            space[spec.name] = tune.randint(int(spec.low), int(spec.high) + 1)
        else:
            space[spec.name] = tune.choice(list(spec.values))
    return space


def pbt_mutations(task: Task) -> dict[str, Any]:
    """Ray PBT's mutations: domains for numbers (resampled or scaled), plain lists for categories
    and discrete values (Ray moves those to a neighbour; a `choice` domain it would multiply)."""
    space = search_space(task, log10_keys=False)
    for spec in task.parameters:
        if spec.type in (ParameterType.CATEGORICAL, ParameterType.DISCRETE):
            space[spec.name] = list(spec.values)
    return space


def pb2_bounds(task: Task) -> dict[str, Any]:
    """PB2's bounds: the continuous parameters (LOG floats as log10)."""
    bounds: dict[str, Any] = {}
    for spec in task.parameters:
        if spec.type is ParameterType.FLOAT and spec.scale is Scale.LOG:
            bounds[LOG10 + spec.name] = [math.log10(spec.low), math.log10(spec.high)]
        elif spec.type in (ParameterType.FLOAT, ParameterType.INTEGER):
            bounds[spec.name] = [float(spec.low), float(spec.high)]
    return bounds


def rank_value(task: Task, metrics: Mapping[str, float]) -> float:
    """The metric Ray ranks by: the first objective, a diverged model the worst finite value."""
    objective = task.objectives[0]
    value = metrics.get(objective.metric, math.nan)
    if math.isfinite(value):
        return float(value)
    return -1e30 if objective.goal is Goal.MAXIMIZE else 1e30


def trainable(config: dict[str, Any], task: Task, budget: Budget, run_seed: int) -> None:
    """Ray's function trainable: restore, then train and report every interval until stopped."""
    from ray import tune

    trial = tune.get_context().get_trial_id()
    hparams = decode(task, config)
    checkpoint = tune.get_checkpoint()
    schedule: Schedule = ()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state, schedule = load_checkpoint(task, Path(folder) / MODEL_FOLDER)
    else:
        state = task.init(hparams, derived_seed(run_seed, trial, "init"))
    while True:
        start = task.step_of(state)
        schedule = extend(schedule, start, hparams)
        state = task.train(state, hparams, budget.interval, derived_seed(run_seed, trial, start))
        metrics = metrics_of(task, state)
        with tempfile.TemporaryDirectory(prefix="ray-ckpt-") as folder:
            save_checkpoint(task, state, schedule, Path(folder) / MODEL_FOLDER)
            tune.report(
                {"rank": rank_value(task, metrics), "step": task.step_of(state), "trained": budget.interval,
                 "task_metrics": json.dumps(metrics), "schedule": json.dumps([[s, h] for s, h in schedule])},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )


def run_ray(pb2: bool, task: Task, budget: Budget, seed: int, workdir: Path) -> MethodOutcome:
    """One Ray Tune run with the PBT (or PB2) scheduler."""
    ensure_ray()
    random.seed(seed)  # Ray's schedulers and its variant generator draw from the global generators
    np.random.seed(seed)
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.schedulers.pb2 import PB2

    log = EventLog()
    mode = "max" if task.objectives[0].goal is Goal.MAXIMIZE else "min"
    common: dict[str, Any] = {"time_attr": "step", "perturbation_interval": budget.interval, "metric": "rank",
                              "mode": mode}
    scheduler = (
        PB2(hyperparam_bounds=pb2_bounds(task), **common)
        if pb2
        else PopulationBasedTraining(hyperparam_mutations=pbt_mutations(task), **common)
    )

    class Record(tune.Callback):
        """Logs every result in the driver; pickled (Ray saves its state) without the log."""

        def __init__(self, log: EventLog | None) -> None:
            self.log = log

        def __getstate__(self) -> dict[str, Any]:
            return {"log": None}

        def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                            **info: Any) -> None:
            if self.log is None:
                return
            raw = json.loads(result["schedule"])
            self.log.add_trained(int(result["trained"]))
            self.log.add(Event(self.log.elapsed(), int(result["trained"]), int(result["step"]), str(trial.trial_id),
                               json.loads(result["task_metrics"]), tuple((int(s), dict(h)) for s, h in raw)))

    class Budgeted(tune.Stopper):
        """A trial stops at `steps_per_member`; every trial once all have trained the budget."""

        def __init__(self) -> None:
            self.trained = 0

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            self.trained += int(result["trained"])
            return int(result["step"]) >= budget.steps_per_member

        def stop_all(self) -> bool:
            return self.trained >= budget.total_steps

    tuner = tune.Tuner(
        tune.with_parameters(trainable, task=task, budget=budget, run_seed=seed),
        param_space=search_space(task, log10_keys=pb2),
        tune_config=tune.TuneConfig(num_samples=budget.members, scheduler=scheduler, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(workdir / "ray"), name="run", stop=Budgeted(),
                                  callbacks=[Record(log)], verbose=0),
    )
    results = tuner.fit()
    errors = len(results.errors)
    note = "ranked by the first objective only" if task.comparison is Comparison.PARETO else ""
    if errors:
        note = "; ".join(filter(None, [note, f"{errors} trial(s) errored: {results.errors[0]!r}"[:300]]))
    return MethodOutcome(log.events(), log.trained, len(results), note)
