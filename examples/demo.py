"""The main job: the service on its embedded SQLite default, local workers training an example
(the digits MLP by default) with PBT, live progress, and at the end the best trial, its fitness and
its hyperparameter schedule, and the study's plots (PNG and interactive HTML) under
<workdir>/plots/<study>.

    python -m examples.demo --workers 4 --population 8 --generations 10
    python -m examples.demo --example toy --population 10 --generations 20
    python -m examples.demo --example noisy_quadratic --population 10 --generations 40

It first prints what the study tunes (the parameters mutated at every explore step, the frozen
ones sampled once per lineage) and its objective. The progress bar's "best <objective>" is the
best value any trial has reported so far (active trials included); it appears with the first
measurement. The best trial at the end is the best final measurement of a completed trial by the
study's comparison; equal ones go to the earliest trial.

The study's checkpoints live under <workdir>/checkpoints, its checkpoint root; the workers delete
the checkpoints no trial can need any more as they go (--no-collect-checkpoints keeps them all).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import math
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

from pbt_service.local import LocalService
from worker_client import (
    CheckpointPolicy,
    Comparison,
    Goal,
    Objective,
    PbtClient,
    StudyConfig,
    Trial,
    TrialStatus,
    run_workers,
)
from worker_client.results import best, format_schedule, trial_schedule

EXAMPLES = ("digits", "toy", "noisy_quadratic")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    problem = importlib.import_module(f"examples.{args.example}.problem")
    root = Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    database = args.database_url or f"sqlite:///{root / 'pbt.db'}"
    config = problem.study_config(
        population_size=args.population, max_generations=args.generations,
        **({"steps_per_trial": args.steps} if args.steps else {}), seed=args.seed,
        **({"frozen": tuple(filter(None, args.freeze.split(",")))} if args.freeze is not None else {}),
    )
    checkpoints = (root / "checkpoints").resolve()
    config = dataclasses.replace(config, checkpoints=CheckpointPolicy(roots=(str(checkpoints),)))
    study_name = args.study or f"{args.example}-{time.strftime('%Y%m%d-%H%M%S')}"
    total = args.population * args.generations
    with LocalService(database) as service, PbtClient(service.address) as client:
        study = client.create_study(study_name, config, exist_ok=True)
        print(f"service on {service.address} ({database}); study {study.name}: population "
              f"{args.population}, {args.generations} generations, {args.workers} workers")
        print(describe_search(study.config))
        workers = threading.Thread(
            target=run_workers,
            args=(service.address, study.name, problem.train, problem.evaluate, args.workers, checkpoints),
            kwargs={"collect_checkpoints": args.collect_checkpoints},
        )
        workers.start()
        with tqdm(total=total, unit="trial", dynamic_ncols=True) as bar:
            while workers.is_alive():
                workers.join(timeout=1.0)
                _show(client, study.name, config, bar)
            _show(client, study.name, config, bar)
        _report(client, study.name)
        if args.plots:
            _plot(client, study.name, root / "plots" / study.name, database)
        files = [p for p in checkpoints.rglob("*") if p.is_file()]
        print(f"checkpoints on disk under {checkpoints}: {len(files)} files, "
              f"{sum(p.stat().st_size for p in files)} bytes")


def _show(client: PbtClient, study: str, config: StudyConfig, bar: tqdm) -> None:
    trials = client.list_trials(study)
    done = sum(t.status is TrialStatus.COMPLETED for t in trials)
    running = sum(t.status is TrialStatus.ACTIVE for t in trials)
    bar.update(done - bar.n)
    postfix: dict[str, object] = {"generation": max((t.generation for t in trials), default=0), "running": running}
    objective = config.objectives[0]
    score = best_measured(trials, objective)
    if score is not None:  # no field at all until some trial has reported: never "nan"
        postfix[f"best {objective.metric}"] = f"{score:.4g}"
    bar.set_postfix(postfix)


def best_measured(trials: Iterable[Trial], objective: Objective) -> float | None:
    """The best finite value of `objective` in any measurement of any trial (active ones and
    intermediate measurements included), so the bar has a number as soon as one is reported; None
    before that. The final winner is picked among completed trials' final measurements only."""
    values = [
        value
        for t in trials
        for m in (*t.measurements, *((t.final_measurement,) if t.final_measurement else ()))
        if objective.metric in m.metrics and math.isfinite(value := float(m.metrics[objective.metric]))
    ]
    if not values:
        return None
    return min(values) if objective.goal is Goal.MINIMIZE else max(values)


def describe_search(config: StudyConfig) -> str:
    """What the study tunes, in one line: the parameters mutated at every explore step, the frozen
    ones (sampled once per lineage, then inherited unchanged), and the objectives."""
    mutated = [p.name for p in config.parameters if not p.frozen]
    frozen = [p.name for p in config.parameters if p.frozen]
    text = f"tuning: {', '.join(mutated) or 'nothing'} (mutated at every explore step)"
    if frozen:
        text += f"; {', '.join(frozen)} (frozen: sampled once per lineage, inherited, never mutated)"
    goals = [f"{o.goal.name.lower()} {o.metric}" for o in config.objectives]
    if config.comparison is Comparison.PARETO and len(goals) > 1:
        return f"{text}; objectives (Pareto): {' and '.join(goals)}"
    return f"{text}; objective: {', then '.join(goals)}"


def _report(client: PbtClient, study_name: str) -> None:
    study = client.get_study(study_name)
    top = best(client, study, top=1)
    if not top:
        print("no completed trial")
        return
    winner = top[0]
    assert winner.final_measurement is not None
    fitness = ", ".join(f"{o.metric}={winner.final_measurement.metrics[o.metric]:.4g}" for o in study.config.objectives)
    others = ", ".join(
        f"{name}={value:.4g}" for name, value in sorted(winner.final_measurement.metrics.items())
        if name not in {o.metric for o in study.config.objectives}
    )
    print(f"\nbest trial {winner.id} (generation {winner.generation}): fitness {fitness}"
          + (f"; also reported: {others}" if others else ""))
    print(f"checkpoint: {winner.final_measurement.checkpoint_path}")
    print("hyperparameter schedule (root first):")
    print(format_schedule(trial_schedule(client, winner)))


def _plot(client: PbtClient, study_name: str, directory: Path, database: str) -> None:
    """The study's plots as PNG and HTML, where the user can open them, and how to see more."""
    from worker_client.results.plots import write_plots

    paths = write_plots(client.get_study(study_name), client.list_trials(study_name), directory)
    print(f"plots: {directory}/ ({', '.join(sorted(p.name for p in paths))})")
    print(f"query it: pbt-results --database-url {database} trials {study_name} --sort fitness --limit 10")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4, help="local worker threads (default %(default)s)")
    parser.add_argument("--population", type=int, default=10, help="population size (default %(default)s)")
    parser.add_argument("--generations", type=int, default=20, help="generations (default %(default)s)")
    parser.add_argument("--example", choices=EXAMPLES, default="digits", help="what to train (default %(default)s)")
    parser.add_argument("--steps", type=int, default=0, help="training steps per trial (default: the example's)")
    parser.add_argument("--seed", type=int, default=0, help="the study's seed (default %(default)s)")
    parser.add_argument("--freeze", default=None,
                        help="comma-separated parameters never mutated (default: the example's; digits freezes "
                             "hidden_units,optimizer; '' mutates all)")
    parser.add_argument("--workdir", default="runs/demo",
                        help="database, checkpoints and plots go here (default %(default)s)")
    parser.add_argument("--database-url", default=None, help="default: sqlite:///<workdir>/pbt.db")
    parser.add_argument("--study", default=None, help="study name (default: <example>-<time>)")
    parser.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True,
                        help="write the study's plots to <workdir>/plots/<study> at the end (default: on)")
    parser.add_argument("--collect-checkpoints", action=argparse.BooleanOptionalAction, default=True,
                        help="workers delete checkpoints no trial can need (default: on)")
    return parser


if __name__ == "__main__":
    main()
