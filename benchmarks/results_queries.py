"""How long reading results takes as a study grows: the Python API (and so `pbt-results` and the
dashboard) through the service over gRPC and read-only straight from the database.

The toy problem (examples/toy) runs through the real service on a fresh SQLite file with 4 worker
threads until the study holds P x G trials; then each query runs `--repeat` times from a cold
`StudyResults` (every run reads all trials again, as a dashboard refresh does) and the table gives
the median seconds. Plotting is timed once per format (PNG for the five matplotlib figures, the
plotly JSON of one figure as the dashboard asks for it).

    PYTHONPATH=. python benchmarks/results_queries.py --population 10 --generations 50
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from examples.toy.problem import evaluate, study_config, train
from pbt_service.local import LocalService
from worker_client import PbtClient, run_workers
from worker_client.results import Results, connect
from worker_client.results.plots import plotly_json, write_plots

STUDY = "toy"


def timed(work: Callable[[], object], repeat: int) -> float:
    """The median wall time of `repeat` runs of `work`."""
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def queries(results: Results) -> dict[str, Callable[[], object]]:
    return {
        "studies (summaries)": results.studies,
        "all trials": lambda: results.study(STUDY).all_trials(),
        "best 5": lambda: results.study(STUDY).best(5),
        "trials DataFrame": lambda: results.study(STUDY).trials_dataframe(),
        "measurements DataFrame": lambda: results.study(STUDY).measurements_dataframe(),
        "lineage of the best": lambda: (s := results.study(STUDY)).lineage(s.best(1)[0].id),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=10)
    parser.add_argument("--generations", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'pbt.db'}"
        with LocalService(url, retry_after_seconds=0.01) as service:
            with PbtClient(service.address) as client:
                client.create_study(STUDY, study_config(population_size=args.population,
                                                        max_generations=args.generations))
            start = time.perf_counter()
            run_workers(service.address, STUDY, train, evaluate, 4, Path(folder) / "runs")
            trials = args.population * args.generations
            print(f"toy study: population {args.population}, {args.generations} generations, {trials} trials "
                  f"(made in {time.perf_counter() - start:.0f} s); median of {args.repeat} cold reads; SQLite")
            print("| query | gRPC (s) | database (s) | gRPC / database |\n|---|---:|---:|---:|")
            with connect(service.address) as over_grpc, connect(url) as direct:
                for (name, a), b in zip(queries(over_grpc).items(), queries(direct).values(), strict=True):
                    ga, db = timed(a, args.repeat), timed(b, args.repeat)
                    print(f"| {name} | {ga:.3f} | {db:.3f} | {ga / db:.1f} |")
                study = direct.study(STUDY)
                everything = study.all_trials()
                png = timed(lambda: write_plots(study.study, everything, Path(folder) / "png", formats=("png",)), 1)
                page = timed(lambda: plotly_json("progress", study.study, everything), args.repeat)
                print(f"\nfive PNG plots: {png:.2f} s; the progress figure as plotly JSON: {page:.3f} s")


if __name__ == "__main__":
    main()
