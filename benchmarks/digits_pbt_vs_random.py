"""PBT vs random search on the digits MLP, both through the real service, same budget.

For each seed, on fresh SQLite files, three studies with the same seed (so the same P
hyperparameter samples in generation 0):
  PBT:    population P, G generations of S steps; every lineage trains G·S steps, P·G trials.
  PBT-fz: the same with `hidden_units` and `optimizer` frozen (sampled once per lineage), so
          children keep the whole model and the optimizer state; only lr and momentum mutate.
  random: max_generations=1 and G·S steps per trial: P trials sample hyperparameters once and
          train from scratch as long as a PBT lineage. All three spend P·G·S training steps.
Each picks its trial with the best validation accuracy (ties: lower validation loss) among the
final measurements of its completed trials and reports that trial's held-out test accuracy.

    PYTHONPATH=. python benchmarks/digits_pbt_vs_random.py --seeds 5 --workers 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from examples.digits import DigitsMLP, study_config
from pbt_service.core.types import StudyConfig, Trial, TrialStatus
from pbt_service.local import LocalService
from worker_client import PbtClient, run_workers


@dataclass(frozen=True)
class Result:
    validation_accuracy: float
    test_accuracy: float
    trials: int
    chosen: str
    seconds: float


def describe(trial: Trial) -> str:
    h = trial.hparams
    text = f"{trial.id} (gen {trial.generation}): {h['optimizer']} lr={float(h['learning_rate']):.1e}"
    text += f" h={int(float(h['hidden_units']))}"
    return text + (f" m={float(h['momentum']):.2f}" if "momentum" in h else "")


def run_study(name: str, config: StudyConfig, seed: int, workers: int, workdir: Path) -> Result:
    problem = DigitsMLP(seed=seed)
    workdir.mkdir(parents=True)
    start = time.perf_counter()
    with LocalService(f"sqlite:///{workdir / 'pbt.db'}") as service, PbtClient(service.address) as client:
        client.create_study(name, config)
        run_workers(service.address, name, problem.train, problem.evaluate, workers, workdir / "runs")
        trials = client.list_trials(name, statuses=[TrialStatus.COMPLETED], with_measurements=False)
    seconds = time.perf_counter() - start
    measured = [(t, t.final_measurement) for t in trials if t.final_measurement is not None]
    trial, final = max(measured, key=lambda p: (p[1].metrics["accuracy"], -p[1].metrics["loss"]))
    return Result(final.metrics["accuracy"], final.metrics["test_accuracy"], len(trials), describe(trial), seconds)


FROZEN = ("hidden_units", "optimizer")


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    lineage_steps = args.generations * args.steps
    print(
        f"digits MLP. PBT: population {args.population}, {args.generations} generations x "
        f"{args.steps} steps ({args.population * args.generations} trials); PBT-fz: the same with "
        f"{' and '.join(FROZEN)} frozen.\nrandom search: {args.population} trials x {lineage_steps} "
        f"steps from scratch. Each trains {args.population * lineage_steps} steps in all; "
        f"worker threads: {args.workers}.\n"
        f"Score: test accuracy of the trial with the best validation accuracy (val / test below).\n"
    )
    arms = ("PBT", "PBT-fz", "random")
    print(f"{'seed':>4}" + "".join(f"  {name + ' val/test':>18}  {'s':>4}" for name in arms) + "  best")
    scores: dict[str, list[float]] = {name: [] for name in arms}
    choices: list[str] = []
    for seed in range(args.seeds):
        row = f"{seed:>4}"
        results = {}
        with tempfile.TemporaryDirectory(prefix="pbt-digits-") as tmp:
            for name, config in study_configs(args, seed).items():
                result = run_study(f"digits-{name}-{seed}", config, seed, args.workers, Path(tmp) / name)
                results[name] = result
                scores[name].append(result.test_accuracy)
                val, test = result.validation_accuracy, result.test_accuracy
                row += f"  {val:>8.4f} / {test:.4f}  {result.seconds:>4.0f}"
                choices.append(f"seed {seed} {name:>6}: trial {result.chosen}")
        print(row + "  " + leaders({name: r.test_accuracy for name, r in results.items()}))
    medians = {name: statistics.median(values) for name, values in scores.items()}
    print(
        f"\nmedian test accuracy over {args.seeds} seeds: "
        + ", ".join(f"{name} {value:.4f}" for name, value in medians.items())
        + f" -> best: {leaders(medians)}"
    )
    print("\nchosen trials:\n" + "\n".join(choices))


def study_configs(args: argparse.Namespace, seed: int) -> dict[str, StudyConfig]:
    lineage_steps = args.generations * args.steps
    return {
        "PBT": study_config(args.population, args.generations, args.steps, seed=seed, frozen=()),
        "PBT-fz": study_config(args.population, args.generations, args.steps, seed=seed, frozen=FROZEN),
        "random": study_config(args.population, 1, lineage_steps, seed=seed),
    }


def leaders(scores: dict[str, float]) -> str:
    top = max(scores.values())
    return "=".join(name for name, value in scores.items() if value == top)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--population", type=int, default=10)
    p.add_argument("--generations", type=int, default=10)
    p.add_argument("--steps", type=int, default=100, help="training steps per PBT trial")
    p.add_argument("--workers", type=int, default=1, help="worker threads (1: reproducible)")
    return p


if __name__ == "__main__":
    main()
