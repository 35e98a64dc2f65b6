"""Per-trial overhead of the worker client: time between trials beyond the user's own work.

The paper's figure 9 breaks a trial's time into RPC, setup, warm-up, training and finish. Here
the user's work is simulated (the trainer sleeps, writes one checkpoint; the evaluator sleeps), so
everything else is the client's and the service's: noticing the trainer finished, reporting the
final measurement, completing the trial, asking for the next one, preparing its model directory
and starting its trainer (a process in command mode). The service runs as a separate process on
SQLite, as it would in use.

For each pair of consecutive trials on one worker:

    overhead = next trainer start - trainer end - final evaluation time

Timestamps are taken inside the user's code (in command mode, inside the script after its
imports), so in command mode the overhead includes starting the trainer's interpreter, shown
apart in the `python start` column.

    python benchmarks/client_overhead.py            # about a minute
    python benchmarks/client_overhead.py --train-seconds 0.5 --generations 10
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from pbt_service.core.types import (  # noqa: E402
    AlgorithmConfig,
    Goal,
    Objective,
    ParameterSpec,
    ParameterType,
    Scale,
    StudyConfig,
)
from worker_client import PbtClient, TrialContext, Worker  # noqa: E402
from worker_client.cli import main as pbt_worker  # noqa: E402
from worker_client.client import PbtClient as _Client  # noqa: E402

TRAINER_SCRIPT = """
import json, os, sys, time
start = time.time()
out, record, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
step = int(os.environ["PBT_GENERATION"]) + 1
time.sleep(seconds)
with open(os.path.join(out, ".tmp"), "w") as f:
    f.write(json.dumps({"value": float(os.environ["PBT_HP_LR"])}))
os.replace(os.path.join(out, ".tmp"), os.path.join(out, "ckpt-%09d" % step))
with open(record, "a") as f:
    f.write(json.dumps({"kind": "train", "trial": int(os.environ["PBT_TRIAL_ID"]),
                        "start": start, "end": time.time()}) + "\\n")
"""
EVALUATOR_SCRIPT = """
import json, sys, time
start = time.time()
checkpoint, record, seconds, trial = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
time.sleep(seconds)
value = json.load(open(checkpoint))["value"]
with open(record, "a") as f:
    f.write(json.dumps({"kind": "eval", "trial": trial, "start": start, "end": time.time()}) + "\\n")
print(json.dumps({"score": value}))
"""


@dataclass(frozen=True)
class Setup:
    name: str
    mode: str  # "python", "command+module", "command+command"
    workers: int
    population: int


@dataclass(frozen=True)
class Result:
    setup: Setup
    trials: int
    gaps: list[float]
    rpc_seconds: float
    wall_seconds: float


class Record:
    """Thread-safe JSON-lines log of the user's work, shared with subprocesses through a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def add(self, kind: str, trial: int, start: float, end: float) -> None:
        with self._lock, open(self.path, "a") as handle:
            handle.write(json.dumps({"kind": kind, "trial": trial, "start": start, "end": end}) + "\n")

    def read(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.path.read_text().splitlines()]


def study_config(population: int, generations: int) -> StudyConfig:
    return StudyConfig(
        parameters=(ParameterSpec("lr", ParameterType.FLOAT, low=1e-3, high=1.0, scale=Scale.LOG),),
        objectives=(Objective("score", Goal.MAXIMIZE),),
        algorithm=AlgorithmConfig(population_size=population, max_generations=generations, seed=0),
    )


@contextmanager
def service(folder: Path) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "pbt_service.cli", "serve", "--database-url", f"sqlite:///{folder / 'pbt.db'}",
        "--host", "127.0.0.1", "--port", str(port), "--retry-after-seconds", "0.05", "--log-level", "WARNING",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        address = f"127.0.0.1:{port}"
        with PbtClient(address, retry_seconds=30) as client:
            client.list_studies()
        yield address
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def rpc_timer() -> Iterator[list[float]]:
    """Adds up the time spent in every RPC of this process (retries included)."""
    spent = [0.0]
    lock = threading.Lock()
    original = _Client._call

    def timed(self: _Client, method: Callable[..., object], request: object) -> object:
        start = time.perf_counter()
        try:
            return original(self, method, request)
        finally:
            with lock:
                spent[0] += time.perf_counter() - start

    _Client._call = timed  # type: ignore[assignment,method-assign]
    try:
        yield spent
    finally:
        _Client._call = original  # type: ignore[method-assign]


def run_python_mode(
    address: str, study: str, folder: Path, setup: Setup, record: Record, args: argparse.Namespace
) -> None:
    def train(ctx: TrialContext) -> None:
        start = time.time()
        time.sleep(args.train_seconds)
        target = ctx.checkpoint_path(ctx.generation + 1)
        tmp = target.with_name(".tmp")
        tmp.write_text(json.dumps({"value": float(ctx.hparams["lr"])}))
        os.replace(tmp, target)
        record.add("train", ctx.trial_id, start, time.time())

    def evaluate(ctx: TrialContext, checkpoint: Path) -> dict[str, float]:
        start = time.time()
        time.sleep(args.eval_seconds)
        value = json.loads(checkpoint.read_text())["value"]
        record.add("eval", ctx.trial_id, start, time.time())
        return {"score": value}

    def work(index: int) -> None:
        with PbtClient(address) as client:
            Worker(client, study, train, evaluate, worker_id=f"bench-w{index}", workdir=folder / "runs").run()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(setup.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run_command_mode(
    address: str, study: str, folder: Path, setup: Setup, record: Record, args: argparse.Namespace
) -> None:
    trainer = folder / "bench_train.py"
    trainer.write_text(textwrap.dedent(TRAINER_SCRIPT))
    evaluator = folder / "bench_eval.py"
    evaluator.write_text(textwrap.dedent(EVALUATOR_SCRIPT))
    options = [
        "--service", address, "--study", study, "--workdir", str(folder / "runs"), "--workers", str(setup.workers),
        "--quiet", "--log-level", "ERROR", "--settle-seconds", "0",
    ]
    if setup.mode == "command+module":
        os.environ["BENCH_RECORD"] = str(record.path)
        os.environ["BENCH_EVAL_SECONDS"] = str(args.eval_seconds)
        options += ["--evaluator-module", "benchmarks.client_overhead:module_evaluator"]
    else:
        evaluate = f"{sys.executable} {evaluator} {{checkpoint}} {record.path} {args.eval_seconds} {{trial_id}}"
        options += ["--evaluator", evaluate]
    command = [sys.executable, str(trainer), "{model_dir}", str(record.path), str(args.train_seconds)]
    code = pbt_worker([*options, "--", *command])
    if code != 0:
        raise RuntimeError(f"pbt-worker exited with {code}")


def module_evaluator(ctx: TrialContext, checkpoint: Path) -> dict[str, float]:
    """The evaluator of the `command+module` setup: a Python callable next to a command trainer."""
    start = time.time()
    time.sleep(float(os.environ["BENCH_EVAL_SECONDS"]))
    value = json.loads(checkpoint.read_text())["value"]
    Record(Path(os.environ["BENCH_RECORD"])).add("eval", ctx.trial_id, start, time.time())
    return {"score": value}


def measure(setup: Setup, args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory(prefix="pbt-overhead-") as tmp:
        folder = Path(tmp)
        record = Record(folder / "record.jsonl")
        record.path.touch()
        with service(folder) as address, PbtClient(address) as client:
            study = f"overhead-{setup.name}"
            client.create_study(study, study_config(setup.population, args.generations))
            started = time.perf_counter()
            with rpc_timer() as spent:
                if setup.mode == "python":
                    run_python_mode(address, study, folder, setup, record, args)
                else:
                    run_command_mode(address, study, folder, setup, record, args)
            wall = time.perf_counter() - started
            trials = client.list_trials(study, with_measurements=False)
        worker_of = {t.id: t.worker_id for t in trials}
        train: dict[int, dict[str, Any]] = {}
        evals: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for entry in record.read():
            if entry["kind"] == "train":
                train[int(entry["trial"])] = entry
            else:
                evals[int(entry["trial"])].append(entry)
        by_worker: dict[str, list[int]] = defaultdict(list)
        for trial_id in sorted(train, key=lambda t: train[t]["start"]):
            by_worker[worker_of[trial_id]].append(trial_id)
        gaps = []
        for sequence in by_worker.values():
            for previous, following in zip(sequence, sequence[1:], strict=False):
                end = train[previous]["end"]
                final_eval = sum(e["end"] - max(e["start"], end) for e in evals[previous] if e["end"] > end)
                gaps.append(train[following]["start"] - end - final_eval)
        return Result(setup, len(trials), gaps, spent[0], wall)


def python_start_seconds() -> float:
    """Median time to start and end a bare interpreter (`python -c pass`)."""
    times = []
    for _ in range(7):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-seconds", type=float, default=0.2, help="the simulated training per trial")
    parser.add_argument("--eval-seconds", type=float, default=0.02, help="the simulated evaluation per checkpoint")
    parser.add_argument("--generations", type=int, default=6)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the workers' progress logs would drown the table
    setups = [
        Setup("python-1", "python", workers=1, population=4),
        Setup("python-4", "python", workers=4, population=8),
        Setup("command-module-1", "command+module", workers=1, population=4),
        Setup("command-command-1", "command+command", workers=1, population=4),
        Setup("command-command-4", "command+command", workers=4, population=8),
    ]
    startup = python_start_seconds()
    print(f"user work per trial: train {args.train_seconds * 1000:.0f} ms (sleep, one checkpoint), "
          f"evaluate {args.eval_seconds * 1000:.0f} ms; {args.generations} generations; service: "
          f"pbt-service subprocess on SQLite; {os.cpu_count()} CPUs; python start {startup * 1000:.0f} ms")
    header = ("setup", "mode", "workers", "pop", "trials", "gaps", "overhead mean", "median", "p95", "max",
              "RPC/trial", "overhead %")
    rows = []
    for setup in setups:
        result = measure(setup, args)
        gaps = sorted(result.gaps)
        user = args.train_seconds + args.eval_seconds
        mean = statistics.fmean(gaps)
        rows.append((
            setup.name, setup.mode, str(setup.workers), str(setup.population), str(result.trials), str(len(gaps)),
            f"{mean * 1000:.1f} ms", f"{statistics.median(gaps) * 1000:.1f} ms",
            f"{gaps[int(0.95 * (len(gaps) - 1))] * 1000:.1f} ms", f"{gaps[-1] * 1000:.1f} ms",
            f"{result.rpc_seconds / result.trials * 1000:.1f} ms",
            f"{100 * mean / (mean + user):.1f}%",
        ))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    print("overhead = next trainer start - trainer end - final evaluation, per consecutive pair of trials "
          "on one worker; RPC/trial = time inside client calls of this process / trials (overlaps work)")


if __name__ == "__main__":
    main()
