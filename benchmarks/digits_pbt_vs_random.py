"""PBT vs random search on the digits MLP, both through the real service, same budget.

For each seed, on a fresh SQLite file:
  PBT:    population P, G generations of S steps; every lineage trains G·S steps, P·G trials.
  random: the same study with max_generations=1 and S' = G·S steps per trial, so P trials each
          sample hyperparameters once (generation 0 is uniform sampling; with the same seed they
          are the very samples PBT's generation 0 starts from) and train from scratch as long as a
          PBT lineage. Both spend P·G·S training steps.
Each side picks its trial with the best validation accuracy (ties: lower validation loss) among
the final measurements of its completed trials and reports that trial's held-out test accuracy.

    PYTHONPATH=.:protos python benchmarks/digits_pbt_vs_random.py --seeds 3 --workers 2
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
    text = f"{h['optimizer']} lr={float(h['learning_rate']):.1e} h={int(float(h['hidden_units']))}"
    return text + (f" m={float(h['momentum']):.2f}" if "momentum" in h else "")


def run_study(name: str, config: StudyConfig, seed: int, workers: int, workdir: Path) -> Result:
    problem = DigitsMLP(seed=seed)
    start = time.perf_counter()
    with LocalService(f"sqlite:///{workdir / 'pbt.db'}") as service, PbtClient(service.address) as client:
        client.create_study(name, config)
        run_workers(service.address, name, problem.train, problem.evaluate, workers, workdir / "runs")
        trials = client.list_trials(name, statuses=[TrialStatus.COMPLETED], with_measurements=False)
    seconds = time.perf_counter() - start
    measured = [(t, t.final_measurement) for t in trials if t.final_measurement is not None]
    trial, final = max(measured, key=lambda p: (p[1].metrics["accuracy"], -p[1].metrics["loss"]))
    return Result(
        final.metrics["accuracy"], final.metrics["test_accuracy"], len(trials), describe(trial), seconds
    )


def winner(pbt: float, random: float) -> str:
    return "PBT" if pbt > random else "random" if random > pbt else "tie"


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    lineage_steps = args.generations * args.steps
    print(
        f"digits MLP. PBT: population {args.population}, {args.generations} generations x "
        f"{args.steps} steps ({args.population * args.generations} trials).\n"
        f"random search: {args.population} trials x {lineage_steps} steps from scratch. "
        f"Both train {args.population * lineage_steps} steps in all, {args.workers} worker threads.\n"
        f"Score: test accuracy of the trial with the best validation accuracy.\n"
    )
    print(
        f"{'seed':>4}  {'PBT val':>7}  {'PBT test':>8}  {'PBT s':>5}  {'rand val':>8}  {'rand test':>9}  "
        f"{'rand s':>6}  {'winner':>6}  PBT choice | random choice"
    )
    pbt_scores, random_scores = [], []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory(prefix="pbt-digits-") as tmp:
            pbt_config = study_config(args.population, args.generations, args.steps, seed=seed)
            pbt = run_study(f"digits-pbt-{seed}", pbt_config, seed, args.workers, Path(tmp) / "pbt")
            random_config = study_config(args.population, 1, lineage_steps, seed=seed)
            rand = run_study(f"digits-random-{seed}", random_config, seed, args.workers, Path(tmp) / "rand")
        pbt_scores.append(pbt.test_accuracy)
        random_scores.append(rand.test_accuracy)
        print(
            f"{seed:>4}  {pbt.validation_accuracy:>7.4f}  {pbt.test_accuracy:>8.4f}  {pbt.seconds:>5.1f}  "
            f"{rand.validation_accuracy:>8.4f}  {rand.test_accuracy:>9.4f}  {rand.seconds:>6.1f}  "
            f"{winner(pbt.test_accuracy, rand.test_accuracy):>6}  {pbt.chosen} | {rand.chosen}"
        )
    pbt_median, random_median = statistics.median(pbt_scores), statistics.median(random_scores)
    print(
        f"\nmedian test accuracy over {args.seeds} seeds: PBT {pbt_median:.4f}, "
        f"random {random_median:.4f} -> {winner(pbt_median, random_median)}"
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--population", type=int, default=10)
    p.add_argument("--generations", type=int, default=10)
    p.add_argument("--steps", type=int, default=100, help="training steps per PBT trial")
    p.add_argument("--workers", type=int, default=2, help="worker threads")
    return p


if __name__ == "__main__":
    main()
