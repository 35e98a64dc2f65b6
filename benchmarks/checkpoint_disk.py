"""Disk held by checkpoints over a long PBT run, with and without checkpoint collection.

The toy problem of Jaderberg et al. (examples/toy) through the real service on a fresh SQLite
file: population P, G generations, W worker threads, every trial writing its checkpoint under the
study's checkpoint root. A sampler thread records the files and bytes under the root every
`--sample-seconds`; the table gives the peak and the final state of each run. "collect" runs the
workers with `collect_checkpoints=True` (each worker deletes, after each trial, what the service
decided no trial can need); "keep" collects nothing. Both runs use the same seed.

    PYTHONPATH=. python benchmarks/checkpoint_disk.py --population 10 --generations 100 --markdown out.md
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from examples.toy.problem import evaluate, study_config, train
from pbt_service.core.types import CheckpointPolicy, TrialStatus
from pbt_service.local import LocalService
from worker_client import PbtClient, run_workers


@dataclass(frozen=True)
class DiskRun:
    mode: str
    trials: int
    peak_files: int
    peak_bytes: int
    final_files: int
    final_bytes: int
    best_q: float
    seconds: float


def disk_usage(root: Path) -> tuple[int, int]:
    """(files, bytes) under `root`, tolerating files that vanish while walking."""
    files = size = 0
    for path in root.rglob("*"):
        try:
            if path.is_file():
                files += 1
                size += path.stat().st_size
        except FileNotFoundError:
            continue
    return files, size


class Sampler(threading.Thread):
    """Records the peak (files, bytes) under a directory until stopped."""

    def __init__(self, root: Path, every: float) -> None:
        super().__init__(daemon=True)
        self.root, self.every = root, every
        self.peak_files = self.peak_bytes = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.every)

    def sample(self) -> None:
        files, size = disk_usage(self.root)
        self.peak_files, self.peak_bytes = max(self.peak_files, files), max(self.peak_bytes, size)


def run(mode: str, args: argparse.Namespace, workdir: Path) -> DiskRun:
    root = workdir / mode
    root.mkdir(parents=True)
    config = study_config(population_size=args.population, max_generations=args.generations, seed=args.seed)
    config = dataclasses.replace(config, checkpoints=CheckpointPolicy(roots=(str(root),), keep_best=args.keep_best))
    sampler = Sampler(root, args.sample_seconds)
    started = time.perf_counter()
    with LocalService(f"sqlite:///{workdir / mode}.db") as service:
        with PbtClient(service.address) as client:
            client.create_study("toy", config)
        sampler.start()
        trials = run_workers(
            service.address, "toy", train, evaluate, num_workers=args.workers, workdir=root,
            collect_checkpoints=mode == "collect",
        )  # fmt: skip
        sampler.done.set()
        sampler.join()
        sampler.sample()
        with PbtClient(service.address) as client:
            completed = client.list_trials("toy", statuses=[TrialStatus.COMPLETED], with_measurements=False)
    best = max(t.final_measurement.metrics["Q"] for t in completed if t.final_measurement is not None)
    files, size = disk_usage(root)
    return DiskRun(mode, trials, sampler.peak_files, sampler.peak_bytes, files, size, best,
                   time.perf_counter() - started)  # fmt: skip


def table(runs: list[DiskRun], args: argparse.Namespace) -> str:
    lines = [
        f"toy problem, population {args.population}, {args.generations} generations, {args.workers} workers, "
        f"seed {args.seed}, opponent window 2 generations (default), keep_best {args.keep_best}, "
        f"sampled every {args.sample_seconds}s",
        "",
        "| mode | trials | peak files | peak bytes | final files | final bytes | best Q | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.mode} | {r.trials} | {r.peak_files} | {r.peak_bytes} | {r.final_files} | {r.final_bytes} | "
        f"{r.best_q:.6f} | {r.seconds:.1f} |"
        for r in runs
    ]
    keep, collect = runs
    lines += ["", f"peak files, collect / keep: {collect.peak_files / max(keep.peak_files, 1):.3f}"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--population", type=int, default=10)
    ap.add_argument("--generations", type=int, default=100)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-best", type=int, default=3)
    ap.add_argument("--sample-seconds", type=float, default=0.05)
    ap.add_argument("--markdown", type=Path, help="also write the table here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run(mode, args, Path(tmp)) for mode in ("keep", "collect")]
    text = table(runs, args)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
