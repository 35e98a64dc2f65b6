"""GetNewSuggestion latency with explore PB2 against PERTURB, through the real service on SQLite.

PB2 reads its history and fits a Gaussian process on up to `pb2_max_points` observations inside
every suggestion, where PERTURB only multiplies a few numbers, so its cost is what a PB2 study
adds to every worker's wait. The requirement: PB2's p50 and p95 at most 2x PERTURB's.

For each population, a `LocalService` (the `pbt-service serve` server in-process) on a fresh
SQLite file gets two studies, PERTURB and PB2 (each a log-scaled float, a linear float, an
integer and a category; steps_per_trial 10; pb2_max_points 64 by default). One simulated worker
per study drives it through the API (GetNewSuggestion, `--measurements` ReportMeasurement,
CompleteTrial; the "training" is a formula of the hyperparameters) until the study holds enough
completed children that the GP sees the full `pb2_max_points` observations; then the next
`--suggestions` GetNewSuggestion calls of the two studies are timed in turn, so that whatever
else the machine does weighs on both alike. `pb2.propose` and the store's read of PB2's history
are wrapped to time them apart and to count the points the GP really saw.

BLAS threads: OpenBLAS starts a thread per core; a GP on 64 points gains nothing from them, and
on a busy machine they spin and wait. Each population runs once per `--blas-threads` value (0:
the library default, as the service runs today; 1: limited with threadpoolctl, as a fix would).

`--profile` also times `pb2.propose` on the last observations the service's GP saw: as
configured, with one length scale, fewer or more candidates, the kernel fitted by L-BFGS (what
PB2 did first), and the same GP written in numpy/scipy without scikit-learn (checked to pick the
same point); and PB2's history read as the store does it against finals-only of the newest trials.

    PYTHONPATH=. python benchmarks/pb2_latency.py --quick --profile    # about 3 minutes
    PYTHONPATH=. python benchmarks/pb2_latency.py --measurements 10    # 400 suggestions per cell
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from pbt_service.core import pb2  # noqa: E402
from pbt_service.core.types import (  # noqa: E402
    DEFAULT_PB2_MAX_POINTS,
    AlgorithmConfig,
    ExploreConfig,
    ExploreStrategy,
    Goal,
    Measurement,
    Objective,
    ParameterSpec,
    ParameterType,
    Scale,
    StudyConfig,
    Trial,
)
from pbt_service.local import LocalService  # noqa: E402
from pbt_service.store.sql_queries import COMPLETED  # noqa: E402
from pbt_service.store.sql_rows import TRIALS, load_trials  # noqa: E402
from pbt_service.store.sql_storage import SqlStorage  # noqa: E402
from pbt_service.store.sql_transaction import SqlTransaction  # noqa: E402
from worker_client import PbtClient  # noqa: E402

STEPS = 10
WORKER = "bench-worker"
PARAMETERS = (
    ParameterSpec("lr", ParameterType.FLOAT, low=1e-4, high=1.0, scale=Scale.LOG),
    ParameterSpec("momentum", ParameterType.FLOAT, low=0.0, high=0.99),
    ParameterSpec("width", ParameterType.INTEGER, low=8, high=256),
    ParameterSpec("optimizer", ParameterType.CATEGORICAL, values=("sgd", "adam")),
)
TUNED = 3
"""Dimensions PB2 tunes here (lr, momentum, width): the GP's inputs are these plus time."""


@dataclass
class ProposeMeter:
    """Wraps `pb2.propose` (exploration calls it through the module) to record what the GP saw and
    its time, and the store's read of PB2's history (`SqlTransaction._pb2_history`) to time it."""

    points: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    history_seconds: list[float] = field(default_factory=list)
    recording: bool = False
    last_inputs: tuple[np.ndarray, ...] = ()

    @contextmanager
    def installed(self) -> Iterator[None]:
        original = pb2.propose
        read_history = SqlTransaction._pb2_history

        def timed_history(tx: SqlTransaction, study: str, config: StudyConfig, generation: int) -> list[Trial]:
            start = time.perf_counter()
            trials = read_history(tx, study, config, generation)
            if self.recording and config.algorithm.explore.strategy is ExploreStrategy.PB2:
                self.history_seconds.append(time.perf_counter() - start)
            return trials

        def propose(times: np.ndarray, points: np.ndarray, *rest: Any) -> np.ndarray:
            start = time.perf_counter()
            best = original(times, points, *rest)
            if self.recording:
                self.seconds.append(time.perf_counter() - start)
                self.points.append(int(points.shape[0]))
                self.last_inputs = (times, points, rest[0], rest[1])
            return best

        pb2.propose = propose  # type: ignore[assignment]
        SqlTransaction._pb2_history = timed_history  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            pb2.propose = original
            SqlTransaction._pb2_history = read_history  # type: ignore[method-assign]


@dataclass(frozen=True)
class Cell:
    population: int
    explore: ExploreStrategy
    blas_threads: int
    latencies: tuple[float, ...]
    gp_points: tuple[int, ...]
    gp_seconds: tuple[float, ...]
    history_seconds: tuple[float, ...]
    warmup_trials: int
    gp_inputs: tuple[np.ndarray, ...] = ()
    """The last (times, points, improvements, parent) the service's GP saw, for `--profile`."""

    def quantile(self, q: float) -> float:
        return float(np.quantile(self.latencies, q)) * 1000


def study_config(population: int, explore: ExploreStrategy, max_points: int) -> StudyConfig:
    return StudyConfig(
        PARAMETERS,
        (Objective("score", Goal.MAXIMIZE),),
        algorithm=AlgorithmConfig(
            population_size=population,
            steps_per_trial=STEPS,
            seed=1,
            explore=ExploreConfig(strategy=explore, pb2_max_points=max_points),
        ),
    )


def gain_per_step(trial: Trial) -> float:
    """The simulated training: best near lr 1e-2 and momentum 0.9, a little from the width."""
    lr, momentum = float(trial.hparams["lr"]), float(trial.hparams["momentum"])
    return 0.01 * (1 - (math.log10(lr) + 2) ** 2 / 4 - (momentum - 0.9) ** 2) + 1e-5 * int(trial.hparams["width"])


class Driver:
    """One worker through the API; remembers each checkpoint's (step, score) to continue from."""

    def __init__(self, client: PbtClient, study: str, measurements: int) -> None:
        self.client, self.study, self.measurements = client, study, measurements
        self.finals: dict[str, tuple[int, float]] = {}
        self.rng = np.random.default_rng(0)

    def cycle(self) -> float:
        """Suggests, trains and completes one trial; returns the suggestion's seconds."""
        start = time.perf_counter()
        reply = self.client.get_new_suggestion(self.study, WORKER)
        seconds = time.perf_counter() - start
        if len(reply.trials) != 1:
            raise RuntimeError(f"expected one trial, got {reply}")
        trial = reply.trials[0]
        start_step, start_score = self.finals.get(trial.warm_start_checkpoint_path, (0, 0.0))
        for i in range(1, self.measurements + 1):  # evenly spaced checkpoints, the last at the end
            steps = trial.steps * i // self.measurements
            step = start_step + steps
            score = start_score + steps * gain_per_step(trial) + 0.001 * float(self.rng.standard_normal())
            path = f"/bench/{self.study}/{trial.id}/ckpt-{step:09d}"
            self.client.report_measurement(trial.id, WORKER, Measurement(step, {"score": score}, path))
        self.finals[path] = (step, score)
        self.client.complete_trial(trial.id, WORKER)
        return seconds


def warmup_trials(population: int, max_points: int) -> int:
    """Trials after which the GP sees `max_points`: the store's PB2 window spans
    ceil(max_points / population) + 1 generations, and generation 0 has no improvement."""
    span = -(-max_points // population) + 1
    return (span + 2) * population


@contextmanager
def blas_limited(threads: int) -> Iterator[None]:
    if threads <= 0:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        yield


def blas_default_threads() -> int:
    from threadpoolctl import threadpool_info

    return max((int(info["num_threads"]) for info in threadpool_info()), default=1)


def run_pair(population: int, blas_threads: int, args: argparse.Namespace, workdir: Path) -> list[Cell]:
    """A PERTURB and a PB2 study in one service, warmed up, then their suggestions timed in turn,
    so that whatever else the machine does weighs on both alike."""
    meter = ProposeMeter()
    warmup = warmup_trials(population, args.max_points)
    url = f"sqlite:///{workdir / f'{population}-{blas_threads}.db'}"
    strategies = (ExploreStrategy.PERTURB, ExploreStrategy.PB2)
    latencies: dict[ExploreStrategy, list[float]] = {s: [] for s in strategies}
    with (
        blas_limited(blas_threads),
        meter.installed(),
        LocalService(url) as service,
        PbtClient(service.address) as client,
    ):
        drivers = {
            s: Driver(
                client,
                client.create_study(s.value, study_config(population, s, args.max_points)).name,
                args.measurements,
            )
            for s in strategies
        }
        for driver in drivers.values():
            for _ in range(warmup):
                driver.cycle()
        meter.recording = True
        for _ in range(args.suggestions):
            for s, driver in drivers.items():
                latencies[s].append(driver.cycle())
    perturb, pb = strategies
    return [
        Cell(population, perturb, blas_threads, tuple(latencies[perturb]), (), (), (), warmup),
        Cell(
            population,
            pb,
            blas_threads,
            tuple(latencies[pb]),
            tuple(meter.points),
            tuple(meter.seconds),
            tuple(meter.history_seconds),
            warmup,
            meter.last_inputs,
        ),
    ]


def median_ms(values: tuple[float, ...]) -> str:
    return f"{statistics.median(values) * 1000:.1f}" if values else "-"


def table(cells: list[Cell], args: argparse.Namespace) -> str:
    default = blas_default_threads()
    lines = [
        f"GetNewSuggestion latency, LocalService on SQLite, one simulated worker, {args.suggestions} suggestions "
        f"per cell after the warm-up; {len(PARAMETERS)} parameters ({TUNED} tuned by PB2), steps_per_trial "
        f"{STEPS}, pb2_max_points {args.max_points}, {args.measurements} measurement(s) reported per trial",
        "",
        "| population | BLAS threads | explore | warm-up trials | p50 ms | p95 ms | mean ms | GP points (min-max) "
        "| in pb2.propose p50 ms | reading PB2's history p50 ms |",
        "|---:|---:|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for c in cells:
        points = f"{min(c.gp_points)}-{max(c.gp_points)}" if c.gp_points else "-"
        threads = f"{c.blas_threads}" if c.blas_threads > 0 else f"default ({default})"
        lines.append(
            f"| {c.population} | {threads} | {c.explore.value} | {c.warmup_trials} | {c.quantile(0.5):.1f} | "
            f"{c.quantile(0.95):.1f} | {statistics.mean(c.latencies) * 1000:.1f} | {points} | "
            f"{median_ms(c.gp_seconds)} | {median_ms(c.history_seconds)} |"
        )
    lines += [
        "",
        "| population | BLAS threads | PB2/PERTURB p50 | PB2/PERTURB p95 | within 2x |",
        "|---:|---:|---:|---:|---|",
    ]
    for population in args.populations:
        for threads in args.blas_threads:
            pair = {c.explore: c for c in cells if c.population == population and c.blas_threads == threads}
            perturb, pb = pair[ExploreStrategy.PERTURB], pair[ExploreStrategy.PB2]
            r50, r95 = pb.quantile(0.5) / perturb.quantile(0.5), pb.quantile(0.95) / perturb.quantile(0.95)
            shown = f"{threads}" if threads > 0 else f"default ({default})"
            ok = "yes" if max(r50, r95) <= 2.0 else "NO"
            lines.append(f"| {population} | {shown} | {r50:.2f} | {r95:.2f} | {ok} |")
    return "\n".join(lines)


# --- the breakdown of pb2.propose ------------------------------------------------------------------


@contextmanager
def patched(**constants: Any) -> Iterator[None]:
    """`pb2`'s module constants set for the duration (`propose` reads them at each call)."""
    saved = {name: getattr(pb2, name) for name in constants}
    for name, value in constants.items():
        setattr(pb2, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(pb2, name, value)


def optimised_fit(features: np.ndarray, y: np.ndarray) -> Any:
    """For comparison: the kernel's hyperparameters fitted by L-BFGS (scikit-learn's default, one
    start), as PB2 did before it picked from `pb2.LENGTH_SCALES`."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    lengths = np.full(features.shape[1], 0.3)
    kernel = ConstantKernel(pb2.RANK_VARIANCE, (1e-2, 1e2)) * RBF(lengths, (1e-2, 1e2)) + WhiteKernel(
        pb2.RANK_VARIANCE / 3, (1e-4, 1.0)
    )
    return GaussianProcessRegressor(kernel=kernel, random_state=0).fit(features, y)


@dataclass
class FitClock:
    """Wraps `pb2._fit` to time the fit apart from the acquisition."""

    fit: Callable[[np.ndarray, np.ndarray], Any]
    seconds: float = 0.0

    def __call__(self, features: np.ndarray, y: np.ndarray) -> Any:
        start = time.perf_counter()
        gp = self.fit(features, y)
        self.seconds += time.perf_counter() - start
        return gp


def numpy_propose(
    times: np.ndarray, points: np.ndarray, improvements: np.ndarray, parent: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """`pb2.propose` with the GP written in numpy (same targets, kernels, model choice and
    candidates, so the same point), to show what scikit-learn's per-fit overhead costs.
    Returns (the point, seconds spent fitting)."""
    from scipy.linalg import cho_solve, cholesky, solve_triangular

    start = time.perf_counter()
    n, d = points.shape
    span = float(times.max() - times.min())
    features = np.column_stack([(times - times.min()) / span if span > 0 else np.zeros(n), points])
    y = np.zeros(n)
    for t in np.unique(times):
        y[times == t] = pb2._ranks(improvements[times == t])
    signal, noise = pb2.RANK_VARIANCE, pb2.RANK_VARIANCE / 3
    best: tuple[float, np.ndarray, np.ndarray, np.ndarray] | None = None
    for scale in pb2.LENGTH_SCALES:
        lengths = np.full(d + 1, scale)
        lengths[0] = 1.0
        scaled = features / lengths
        squared = np.sum(scaled**2, 1)[:, None] + np.sum(scaled**2, 1)[None, :] - 2 * scaled @ scaled.T
        lower = cholesky(signal * np.exp(-0.5 * np.maximum(squared, 0)) + noise * np.eye(n), lower=True)
        alpha = cho_solve((lower, True), y)
        likelihood = -0.5 * float(y @ alpha) - float(np.log(np.diag(lower)).sum())
        if best is None or likelihood > best[0]:
            best = (likelihood, lengths, lower, alpha)
    assert best is not None
    _, lengths, lower, alpha = best
    fitted = time.perf_counter() - start
    candidates = np.vstack([rng.random((pb2.CANDIDATES, d)), parent[None, :]])
    at_now = np.column_stack([np.ones(len(candidates)), candidates]) / lengths
    train = features / lengths
    squared = np.sum(at_now**2, 1)[:, None] + np.sum(train**2, 1)[None, :] - 2 * at_now @ train.T
    cross = signal * np.exp(-0.5 * np.maximum(squared, 0))
    v = solve_triangular(lower, cross.T, lower=True)
    std = np.sqrt(np.maximum(signal + noise - np.sum(v**2, 0), 0))
    return candidates[int(np.argmax(cross @ alpha + pb2.UCB_KAPPA * std))], fitted


def profile(args: argparse.Namespace, captured: tuple[np.ndarray, ...]) -> str:
    """The parts of one PB2 proposal on the last observations the service's GP saw."""
    repeats = args.profile_repeats
    times, points, gains, parent = captured
    n, d = points.shape
    variants: list[tuple[str, dict[str, Any], Callable[[np.ndarray, np.ndarray], Any]]] = [
        (f"as configured: length scales {pb2.LENGTH_SCALES}, {pb2.CANDIDATES} candidates", {}, pb2._fit),
        ("one length scale (0.3)", {"LENGTH_SCALES": (0.3,)}, pb2._fit),
        ("64 candidates", {"CANDIDATES": 64}, pb2._fit),
        ("1024 candidates", {"CANDIDATES": 1024}, pb2._fit),
        ("kernel fitted by L-BFGS instead", {}, optimised_fit),
    ]
    default = blas_default_threads()
    lines = [
        f"pb2.propose on the last observations the service's GP saw ({n} points, {d} tuned dimensions + time), "
        f"median of {repeats} calls, variants in turn",
        "",
        "| BLAS threads | variant | fit ms | acquisition ms | total ms |",
        "|---:|---|---:|---:|---:|",
    ]
    for threads in args.blas_threads:
        shown = f"{threads}" if threads > 0 else f"default ({default})"
        totals: list[list[float]] = [[] for _ in variants]
        fits: list[list[float]] = [[] for _ in variants]
        numpy_totals: list[float] = []
        numpy_fits: list[float] = []
        same: list[bool] = []
        with blas_limited(threads):
            for _ in range(repeats):  # in turn, so that load changes weigh on every variant alike
                for i, (_, constants, fit) in enumerate(variants):
                    clock = FitClock(fit)
                    with patched(_fit=clock, **constants):
                        start = time.perf_counter()
                        pb2.propose(times, points, gains, parent, np.random.default_rng(0))
                        totals[i].append(time.perf_counter() - start)
                    fits[i].append(clock.seconds)
                start = time.perf_counter()
                point, fit_seconds = numpy_propose(times, points, gains, parent, np.random.default_rng(0))
                numpy_totals.append(time.perf_counter() - start)
                numpy_fits.append(fit_seconds)
                same.append(
                    bool(np.allclose(point, pb2.propose(times, points, gains, parent, np.random.default_rng(0))))
                )
        for (label, _, _), total, fit_s in zip(variants, totals, fits, strict=True):
            t, f = statistics.median(total) * 1000, statistics.median(fit_s) * 1000
            lines.append(f"| {shown} | {label} | {f:.1f} | {t - f:.1f} | {t:.1f} |")
        t, f = statistics.median(numpy_totals) * 1000, statistics.median(numpy_fits) * 1000
        agree = "same point as pb2.propose" if all(same) else f"same point in {sum(same)}/{len(same)} calls"
        lines.append(
            f"| {shown} | the same GP in numpy/scipy, no scikit-learn ({agree}) | {f:.1f} | {t - f:.1f} | {t:.1f} |"
        )
    return "\n".join(lines)


def history_profile(url: str, population: int, args: argparse.Namespace) -> str:
    """PB2's history read as the store does it (`completed_trials`: every trial of the window with
    all its measurements) against the newest `pb2_max_points` completed trials with their final
    measurements only (`load_trials(full=False)`), which is all PB2 uses. Reaches into the store's
    private members: a measurement of a proposal, not an API."""
    config = study_config(population, ExploreStrategy.PB2, args.max_points)
    storage = SqlStorage.from_url(url)

    def as_stored(tx: SqlTransaction) -> list[Trial]:
        newest = tx._db.scalar(
            select(func.max(TRIALS.c.generation)).where(
                TRIALS.c.study_id == tx._study_id("pb2"), TRIALS.c.status == COMPLETED
            )
        )
        return tx._pb2_history("pb2", config, int(newest))

    def finals_only(tx: SqlTransaction) -> list[Trial]:
        rows = tx._db.execute(
            select(TRIALS)
            .where(TRIALS.c.study_id == tx._study_id("pb2"), TRIALS.c.status == COMPLETED)
            .order_by(TRIALS.c.generation.desc(), TRIALS.c.number.desc())
            .limit(args.max_points)
        ).all()
        return load_trials(tx._db, rows, "pb2", full=False)

    try:
        results: dict[str, list[float]] = {"as stored": [], "finals only": []}
        read: dict[str, list[Trial]] = {}
        for _ in range(args.profile_repeats):
            for label, work in (("as stored", as_stored), ("finals only", finals_only)):
                start = time.perf_counter()
                read[label] = storage.run(work)  # type: ignore[arg-type]
                results[label].append(time.perf_counter() - start)
    finally:
        storage.close()
    same = [(t.id, t.final_measurement) for t in read["as stored"]] == [
        (t.id, t.final_measurement) for t in read["finals only"]
    ]
    lines = [
        f"PB2's history read (population {population}, {args.measurements} measurement(s) per trial), "
        f"median of {args.profile_repeats}, a transaction each",
        "",
        "| read | trials | measurements they carry | ms |",
        "|---|---:|---:|---:|",
    ]
    for label, seconds in results.items():
        trials = read[label]
        loaded = sum(max(len(t.measurements), 1) for t in trials)
        lines.append(f"| {label} | {len(trials)} | {loaded} | {statistics.median(seconds) * 1000:.1f} |")
    lines.append(f"\nsame observations for the GP: {'yes' if same else 'NO'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if not 1 <= args.measurements <= STEPS:
        parser().error(f"--measurements must be between 1 and {STEPS} (the steps of a trial)")
    if args.quick:
        args.suggestions = min(args.suggestions, 200)
        args.profile_repeats = min(args.profile_repeats, 10)
    warnings.filterwarnings("ignore", module="sklearn")  # the GP's ConvergenceWarning on every fit
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="pbt-pb2-") as tmp:
        for population in args.populations:
            for threads in args.blas_threads:
                start = time.perf_counter()
                cells += run_pair(population, threads, args, Path(tmp))
                seconds = time.perf_counter() - start
                print(f"population {population}, BLAS threads {threads or 'default'}: {seconds:.0f} s", file=sys.stderr)
        print(table(cells, args))
        if args.profile:
            captured = next((c.gp_inputs for c in reversed(cells) if c.gp_inputs), ())
            print()
            print(profile(args, captured) if captured else "no PB2 proposal was recorded: nothing to profile")
            population, threads = args.populations[-1], args.blas_threads[-1]
            print()
            print(history_profile(f"sqlite:///{Path(tmp) / f'{population}-{threads}.db'}", population, args))


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="200 suggestions per cell (the minimum for a p95)")
    p.add_argument("--suggestions", type=int, default=400, help="timed suggestions per cell")
    p.add_argument("--populations", type=_ints, default=[10, 20])
    p.add_argument("--max-points", type=int, default=DEFAULT_PB2_MAX_POINTS, help="the study's pb2_max_points")
    p.add_argument("--measurements", type=int, default=1, help="measurements each trial reports (>= 1)")
    p.add_argument("--blas-threads", type=_ints, default=[0, 1], help="0: the library default; n: limit to n")
    p.add_argument("--profile", action="store_true", help="also time the parts of pb2.propose")
    p.add_argument("--profile-repeats", type=int, default=30)
    return p


if __name__ == "__main__":
    main()
