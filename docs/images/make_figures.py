"""Regenerates the README's figures: the toy problem (population 8, 12 generations) on an in-process
service, then `write_plots` for "progress" and "lineage" into this folder as `toy-<name>.png`.

    .venv/bin/python docs/images/make_figures.py

Seeded, so a rerun draws the same run (up to the order in which a single worker finishes trials,
which is fixed too).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main() -> None:
    sys.path.insert(0, str(ROOT))  # `examples` is not installed; the repository root holds it
    from examples.toy import problem as toy
    from pbt_service.local import LocalService
    from worker_client import PbtClient, Worker
    from worker_client.results.plots import write_plots

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        with LocalService(f"sqlite:///{tmp / 'toy.db'}") as service, PbtClient(service.address) as client:
            client.create_study("toy", toy.study_config(population_size=8, max_generations=12))
            Worker(client, "toy", toy.train, toy.evaluate, worker_id="w", workdir=tmp / "runs").run()
            study, trials = client.get_study("toy"), client.list_trials("toy")
    for path in write_plots(study, trials, HERE, formats=["png"], names=["progress", "lineage"], prefix="toy-"):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
