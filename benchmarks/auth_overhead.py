"""What the token check costs a worker's calls: the same sequence of calls against `pbt-service
serve` without tokens, with the bootstrap admin token (`PBT_AUTH_TOKEN`: compared in memory, no
database read), with a stored worker token for every study (one indexed read per call) and with a
stored worker token limited to its study (for calls that name a trial, the trial's study too, in
the same read).

Each mode: a fresh database on each backend, one study, one worker holding a trial, then
`--calls` sequential Heartbeat calls (the cheapest worker call that names a trial) and as many
GetStudy calls, timed in this process. One client, no concurrency: the per-call cost, not the
throughput under load (benchmarks/service_load.py measures that).

    PYTHONPATH=. .venv/bin/python benchmarks/auth_overhead.py --calls 2000
    PYTHONPATH=. .venv/bin/python benchmarks/auth_overhead.py --calls 2000 --backend sqlite
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks.load` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.load.system import Postgres, fresh_database, server, service_command, throwaway_postgres  # noqa: E402
from examples import toy  # noqa: E402
from worker_client import PbtClient  # noqa: E402
from worker_client.settings import ClientSettings  # noqa: E402

ADMIN = "benchmark-admin-token"
MODES = ("no tokens", "admin token (PBT_AUTH_TOKEN)", "stored token, every study", "stored token, its study")


@contextmanager
def _environment(**values: str | None) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _stored_token(url: str, study: str | None) -> str:
    scope = ["--study", study] if study else []
    done = subprocess.run([*service_command(), "token", "create", "--name", "bench", "--role", "worker", *scope,
                           "--database-url", url], capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
    return done.stdout.strip()


def _timed(call: Callable[[], object], count: int) -> list[float]:
    seconds = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def measure(backend: str, postgres: Postgres | None, mode: str, calls: int, workdir: Path) -> tuple[float, float]:
    """Median microseconds of a Heartbeat and of a GetStudy in `mode`."""
    name = f"auth_{MODES.index(mode)}"
    url = fresh_database(backend, postgres, name, workdir)
    token = None if mode == MODES[0] else ADMIN
    if mode == MODES[2]:
        token = _stored_token(url, None)
    elif mode == MODES[3]:
        token = _stored_token(url, "bench")
    env = {"PBT_AUTH_TOKEN": None if mode == MODES[0] else ADMIN,
           "PBT_REQUIRE_TOKEN": None if mode == MODES[0] else "1"}  # fmt: skip
    with _environment(**env), server(url, workdir / f"{name}.log", max_workers=4) as running:
        with PbtClient(ClientSettings(address=running.address, token=ADMIN if token else None)) as admin:
            admin.create_study("bench", toy.study_config(population_size=4, max_generations=1000))
        with PbtClient(ClientSettings(address=running.address, token=token)) as worker:
            trial = worker.get_new_suggestion("bench", "w0").trials[0]
            _timed(lambda: worker.heartbeat(trial.id, "w0"), 100)  # warm-up
            heartbeat = _timed(lambda: worker.heartbeat(trial.id, "w0"), calls)
            study = _timed(lambda: worker.get_study("bench"), calls)
    return statistics.median(heartbeat) * 1e6, statistics.median(study) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls of each kind per mode (default %(default)s)")
    parser.add_argument("--backend", choices=("both", "sqlite", "postgresql"), default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"calls per kind and mode: {args.calls}; one client, sequential; median latency in microseconds")
    print("| backend | tokens | Heartbeat µs | ratio | GetStudy µs | ratio |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        postgres_context = throwaway_postgres() if "postgresql" in backends else nullcontext(None)
        with postgres_context as postgres:
            for backend in backends:
                base: tuple[float, float] | None = None
                for mode in MODES:
                    heartbeat, study = measure(backend, postgres, mode, args.calls, Path(folder))
                    base = base or (heartbeat, study)
                    print(f"| {backend} | {mode} | {heartbeat:.0f} | {heartbeat / base[0]:.2f} | {study:.0f} | "
                          f"{study / base[1]:.2f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
