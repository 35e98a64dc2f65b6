"""Every `pbt-results` query subcommand and the Python API, against real studies made by the toy
example on the real service, on SQLite and PostgreSQL, through gRPC and read-only through the
database URL: both paths must give the same answers, and those answers must match what the
trials themselves say (recomputed here from `list_trials`)."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pandas
import pytest

from examples.toy import problem as toy
from pbt_service.core.fitness import best_trials, dominates, fitness
from pbt_service.core.types import Comparison, Goal, Objective, Study, Trial, TrialStatus
from pbt_service.local import LocalService
from tests.conftest import _execute_autocommit
from tests.worker_client.conftest import ROOT, subprocess_env
from worker_client import PbtClient, TrialContext, Worker
from worker_client.results import Event, connect
from worker_client.results_cli import main as results_main

STUDY, PARETO, EMPTY = "toy", "toy-pareto", "empty"
WORKERS = ("w0", "w1")


def evaluate_two(ctx: TrialContext, checkpoint: Path) -> dict[str, float]:
    """The toy's Q, and the effort h0 + h1 to minimize: a real trade-off for a Pareto study."""
    return {**toy.evaluate(ctx, checkpoint), "effort": float(ctx.hparams["h0"]) + float(ctx.hparams["h1"])}


@dataclass
class Fixture:
    address: str
    database_url: str
    trials: dict[int, Trial]
    study: Study

    def cli(self, *argv: str, database: bool = False) -> int:
        where = ["--database-url", self.database_url] if database else ["--service", self.address]
        return results_main([*where, *argv])


def _run_study(client: PbtClient, name: str, workdir: Path, evaluate: object = toy.evaluate) -> None:
    threads = [
        threading.Thread(target=Worker(client, name, toy.train, evaluate, worker_id=w,  # type: ignore[arg-type]
                                       workdir=workdir / w).run)
        for w in WORKERS
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def done(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    """A finished toy study (population 4, 5 generations, two workers, one trial failed), a finished
    two-objective Pareto study, and an empty study, on one backend."""
    folder = tmp_path_factory.mktemp("queries")
    schema = ""
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'pbt.db'}"
    else:
        base: str = request.getfixturevalue("postgres_url")
        schema = f"q_{uuid.uuid4().hex[:12]}"
        _execute_autocommit(base, f'CREATE SCHEMA "{schema}"')
        url = f"{base}?options=-csearch_path%3D{schema}"
    try:
        with LocalService(url, retry_after_seconds=0.02) as service, PbtClient(service.address) as client:
            client.create_study(STUDY, toy.study_config(population_size=4, max_generations=5, seed=4))
            # One trial of generation 0 fails: a diverged member, with no final measurement.
            first = client.get_new_suggestion(STUDY, "crasher").trials[0]
            client.complete_trial(first.id, "crasher", failure_reason="diverged: loss is NaN")
            _run_study(client, STUDY, folder / "runs")
            pareto = replace(toy.study_config(population_size=4, max_generations=4, seed=2),
                             objectives=(Objective("Q"), Objective("effort", Goal.MINIMIZE)),
                             comparison=Comparison.PARETO)
            client.create_study(PARETO, pareto)
            _run_study(client, PARETO, folder / "pareto", evaluate_two)
            client.create_study(EMPTY, toy.study_config())
            yield Fixture(service.address, url, {t.id: t for t in client.list_trials(STUDY)},
                          client.get_study(STUDY))
    finally:
        if schema:
            _execute_autocommit(base, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run(done: Fixture, capsys: pytest.CaptureFixture[str], *argv: str, database: bool = False) -> str:
    assert done.cli(*argv, database=database) == 0, capsys.readouterr()
    return capsys.readouterr().out


def q(trial: Trial) -> float:
    assert trial.final_measurement is not None
    return float(trial.final_measurement.metrics["Q"])


@pytest.mark.parametrize("database", [False, True], ids=["grpc", "database"])
def test_studies_list_state_and_progress(done: Fixture, capsys: pytest.CaptureFixture[str], database: bool) -> None:
    rows = {r["study"]: r for r in json.loads(run(done, capsys, "studies", "--format", "json", database=database))}
    assert set(rows) == {STUDY, PARETO, EMPTY}
    toy_row = rows[STUDY]
    completed = sum(t.status is TrialStatus.COMPLETED for t in done.trials.values())
    assert toy_row["state"] == "done" and toy_row["trials"] == len(done.trials) == 21
    assert toy_row["completed"] == completed == 20 and toy_row["generations"] == "5/5"
    winner = best_trials(done.trials.values(), done.study.config.objectives, Comparison.LEXICOGRAPHIC)[0]
    assert toy_row["best_trial"] == winner.id and toy_row["best_Q"] == q(winner)
    assert rows[EMPTY]["trials"] == 0 and rows[EMPTY]["generations"] == "0/20" and rows[EMPTY]["best_trial"] is None
    table = run(done, capsys, "studies", database=database)
    assert re.search(rf"^\s*{STUDY}\s+done\s+21\s+20\s+0\s+5/5\s+{winner.id}\s", table, re.MULTILINE)


@pytest.mark.parametrize("database", [False, True], ids=["grpc", "database"])
def test_trials_filters_and_sorting_match_the_trials(
    done: Fixture, capsys: pytest.CaptureFixture[str], database: bool
) -> None:
    def ids(*argv: str) -> list[int]:
        return [r["trial_id"] for r in json.loads(run(done, capsys, "trials", STUDY, *argv, "--format", "json",
                                                      database=database))]

    trials = list(done.trials.values())
    assert ids() == sorted(done.trials)
    assert ids("--status", "failed") == [t.id for t in trials if t.status is TrialStatus.FAILED] != []
    assert ids("--status", "completed", "--status", "FAILED") == sorted(done.trials)
    assert ids("--generation", "2") == [t.id for t in trials if t.generation == 2] != []
    for worker in WORKERS:
        assert ids("--worker", worker) == [t.id for t in trials if t.worker_id == worker]
    assert ids("--worker", "w0") and ids("--worker", "w1")
    parent = next(t.parent_trial_id for t in trials if t.parent_trial_id is not None)
    assert ids("--parent", str(parent)) == [t.id for t in trials if t.parent_trial_id == parent]
    by_q = sorted((t for t in trials if t.final_measurement), key=lambda t: (-q(t), -t.id))
    assert ids("--sort", "Q", "--desc", "--limit", "3") == [t.id for t in by_q[:3]]
    ranked = best_trials(trials, done.study.config.objectives, Comparison.LEXICOGRAPHIC)
    assert ids("--sort", "fitness")[: len(ranked)] == [t.id for t in ranked]
    assert ids("--sort", "fitness")[-1] == next(t.id for t in trials if t.status is TrialStatus.FAILED)
    rows = list(csv.DictReader(io.StringIO(run(done, capsys, "trials", STUDY, "--format", "csv", database=database))))
    assert len(rows) == len(trials) and {"param_h0", "param_h1", "metric_Q", "event"} <= set(rows[0])
    for row in rows:
        trial = done.trials[int(row["trial_id"])]
        assert float(row["param_h0"]) == trial.hparams["h0"]
        assert row["metric_Q"] == ("" if trial.final_measurement is None else repr(q(trial)))


def test_trial_shows_every_measurement(done: Fixture, capsys: pytest.CaptureFixture[str]) -> None:
    trial = next(t for t in done.trials.values() if t.generation == 3)
    shown = json.loads(run(done, capsys, "trial", str(trial.id), "--format", "json"))
    assert shown["trial_id"] == trial.id and shown["hparams"] == dict(trial.hparams)
    assert [m["step"] for m in shown["measurements"]] == sorted(m.step for m in trial.measurements)
    assert shown["measurements"][-1]["final"] and shown["measurements"][-1]["metric_Q"] == q(trial)
    text = run(done, capsys, "trial", str(trial.id), database=True)
    assert f"trial_id: {trial.id}" in text and "measurements:" in text and trial.worker_id in text


def test_best_is_the_study_order_and_a_pareto_study_shows_its_front(
    done: Fixture, capsys: pytest.CaptureFixture[str]
) -> None:
    top = json.loads(run(done, capsys, "best", STUDY, "--top", "3", "--format", "json"))
    ranked = best_trials(done.trials.values(), done.study.config.objectives, Comparison.LEXICOGRAPHIC)
    assert [r["trial_id"] for r in top] == [t.id for t in ranked[:3]]
    assert top[0]["checkpoint_path"] == ranked[0].final_measurement.checkpoint_path  # type: ignore[union-attr]
    with PbtClient(done.address) as client:
        study = client.get_study(PARETO)
        trials = client.list_trials(PARETO)
    front = {r["trial_id"] for r in json.loads(run(done, capsys, "best", PARETO, "--format", "json"))}
    scored = {t.id: f for t in trials if (f := fitness(t.final_measurement, study.config.objectives)) is not None}
    assert front and all(not dominates(scored[o], scored[f]) for f in front for o in scored)
    assert all(any(dominates(scored[f], scored[o]) or scored[f] == scored[o] for f in front) for o in scored)


@pytest.mark.parametrize("database", [False, True], ids=["grpc", "database"])
def test_lineage_lists_ancestors_and_descendants(
    done: Fixture, capsys: pytest.CaptureFixture[str], database: bool
) -> None:
    middle = next(t for t in done.trials.values() if t.generation == 2 and t.parent_trial_id is not None)
    rows = json.loads(run(done, capsys, "lineage", str(middle.id), "--format", "json", database=database))
    ancestors: list[int] = []
    chain = middle.parent_trial_id
    while chain is not None:
        ancestors.insert(0, chain)
        chain = done.trials[chain].parent_trial_id
    below, frontier = set(), {middle.id}
    while frontier:
        frontier = {t.id for t in done.trials.values() if t.parent_trial_id in frontier}
        below |= frontier
    assert [r["trial_id"] for r in rows if r["relation"] == "ancestor"] == ancestors
    assert [r["trial_id"] for r in rows if r["relation"] == "trial"] == [middle.id]
    assert [r["trial_id"] for r in rows if r["relation"] == "descendant"] == sorted(below)
    assert run(done, capsys, "lineage", str(middle.id), database=database).count("ancestor") == len(ancestors)


def test_the_api_reads_the_same_through_grpc_and_the_database(done: Fixture) -> None:
    with connect(done.address) as over_grpc, connect(done.database_url) as direct:
        a, b = over_grpc.study(STUDY), direct.study(STUDY)
        assert a.all_trials() == b.all_trials()
        assert a.summary() == b.summary()
        assert [t.id for t in a.best(5)] == [t.id for t in b.best(5)]
        winner = a.best(1)[0]
        assert a.schedule(winner.id) == b.schedule(winner.id)
        assert [s.trial_id for s in a.schedule(winner.id)][-1] == winner.id
        assert a.lineage(winner.id) == b.lineage(winner.id)
        events = a.events()
        assert events[min(done.trials)] is Event.START
        assert Event.EXPLOIT in events.values() or Event.EXPLORE in events.values()


def test_dataframes_hold_every_trial_and_measurement(done: Fixture) -> None:
    with connect(done.database_url) as results:
        study = results.study(STUDY)
        trials = study.trials_dataframe()
        measurements = study.measurements_dataframe()
    assert isinstance(trials, pandas.DataFrame) and len(trials) == len(done.trials)
    assert list(trials["trial_id"]) == sorted(done.trials)
    assert trials["metric_Q"].isna().sum() == 1  # the failed trial
    assert str(trials["create_time"].dtype).startswith("datetime64")
    finals = [{t.final_measurement.step} if t.final_measurement else set() for t in done.trials.values()]
    expected = sum(len({m.step for m in t.measurements} | f) for t, f in zip(done.trials.values(), finals, strict=True))
    assert len(measurements) == expected and measurements["final"].sum() == 20
    best_row = trials.loc[trials["metric_Q"].idxmax()]
    assert best_row["metric_Q"] == max(q(t) for t in done.trials.values() if t.final_measurement)


def test_export_writes_files_other_tools_read(
    done: Fixture, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "export"
    text = run(done, capsys, "export", STUDY, "--out", str(out), "--format", "csv", "--format", "json",
               "--format", "parquet")
    names = {"trials.csv", "measurements.csv", "study.json", "trials.parquet", "measurements.parquet"}
    assert {p.name for p in out.iterdir()} == names and text.count("wrote ") == 5
    csv_trials = pandas.read_csv(out / "trials.csv")
    parquet_trials = pandas.read_parquet(out / "trials.parquet")
    assert list(csv_trials["trial_id"]) == list(parquet_trials["trial_id"]) == sorted(done.trials)
    assert csv_trials["metric_Q"].tolist() == pytest.approx(parquet_trials["metric_Q"].tolist(), nan_ok=True)
    document = json.loads((out / "study.json").read_text())
    assert document["study"]["name"] == STUDY and len(document["trials"]) == len(done.trials)
    assert document["study"]["config"]["algorithm"]["populationSize"] == 4
    for trial in document["trials"]:
        original = done.trials[trial["trial_id"]]
        assert trial["hparams"] == dict(original.hparams) and trial["parent_trial_id"] == original.parent_trial_id
        assert len(trial["measurements"]) >= len(original.measurements)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert done.cli("export", STUDY, "--out", str(out)) == 2
    assert "exists" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_an_empty_study_says_there_is_nothing_yet(
    done: Fixture, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert "no trials match" in run(done, capsys, "trials", EMPTY)
    assert "no completed trials yet" in run(done, capsys, "best", EMPTY)
    assert json.loads(run(done, capsys, "trials", EMPTY, "--format", "json")) == []
    run(done, capsys, "export", EMPTY, "--out", str(tmp_path / "e"), "--format", "parquet", "--format", "csv")
    assert pandas.read_parquet(tmp_path / "e" / "trials.parquet").empty
    assert "trial_id" in (tmp_path / "e" / "trials.csv").read_text()
    with connect(done.address) as results:
        assert results.study(EMPTY).trials_dataframe().empty


UNKNOWN = [
    (["trials", "nosuch"], "study 'nosuch' not found"),
    (["best", "nosuch"], "study 'nosuch' not found"),
    (["export", "nosuch", "--out", "x"], "study 'nosuch' not found"),
    (["trial", "99999"], "trial 99999 not found"),
    (["lineage", "99999"], "trial 99999 not found"),
    (["schedule", "99999"], "trial 99999 not found"),
]


@pytest.mark.parametrize(("argv", "message"), UNKNOWN, ids=[" ".join(a[:1]) for a, _ in UNKNOWN])
@pytest.mark.parametrize("database", [False, True], ids=["grpc", "database"])
def test_an_unknown_study_or_trial_is_one_line_and_exit_2(
    done: Fixture, capsys: pytest.CaptureFixture[str], argv: list[str], message: str, database: bool
) -> None:
    assert done.cli(*argv, database=database) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [f"pbt-results: {message}"] and captured.out == ""


BAD_OPTIONS = [
    (["trials", STUDY, "--status", "sleeping"], "status: 'sleeping' is not one of"),
    (["trials", STUDY, "--sort", "speed"], "sort: 'speed' is neither"),
    (["trials", STUDY, "--limit", "-1"], "--limit: must not be negative"),
    (["best", STUDY, "--top", "0"], "--top: must be at least 1"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_OPTIONS, ids=[a[2] for a, _ in BAD_OPTIONS])
def test_a_bad_option_value_is_named_and_exits_2(
    done: Fixture, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert done.cli(*argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_database_url_reads_and_never_writes(
    done: Fixture, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from pbt_service.store.read_only import ReadOnlyDatabase

    with ReadOnlyDatabase(done.database_url) as db, db._engine.connect() as connection:  # noqa: SLF001
        with pytest.raises(DBAPIError, match="(?i)read.only|readonly|query_only|attempt to write"):
            connection.execute(text("DELETE FROM trials"))
    with connect(done.address) as results:
        assert len(results.study(STUDY).all_trials()) == len(done.trials)
    for verb in ("gc", "pause", "resume"):
        with pytest.raises(SystemExit) as exit_:
            done.cli(verb, STUDY, database=True)
        assert exit_.value.code == 2
        assert "needs the service" in capsys.readouterr().err
    missing = tmp_path / "none.db"
    assert results_main(["--database-url", f"sqlite:///{missing}", "studies"]) == 2
    assert "no such database file" in capsys.readouterr().err and not missing.exists()


def test_the_command_runs_as_a_program_and_documents_its_defaults() -> None:
    done = subprocess.run([sys.executable, "-m", "worker_client.results_cli", "trials", "--help"],
                          capture_output=True, text=True, env=subprocess_env(), cwd=ROOT, timeout=60)
    assert done.returncode == 0
    assert "--status" in done.stdout and "default: id" in done.stdout and "--format" in done.stdout



def test_plot_writes_every_plot_and_an_empty_study_says_so(
    done: Fixture, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = run(done, capsys, "plot", STUDY, "--out", str(tmp_path / "p"), "--format", "png", database=True)
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == sorted(
        f"{n}.png" for n in ("progress", "best", "schedule", "lineage", "hyperparameters"))
    assert all((tmp_path / "p" / f"{n}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in ("progress", "best"))
    assert text.count("wrote ") == 5
    text = run(done, capsys, "plot", EMPTY, "--out", str(tmp_path / "e"), "--plot", "lineage", "--format", "html")
    assert "no completed trials yet" in text and (tmp_path / "e" / "lineage.html").is_file()


@pytest.mark.parametrize(("argv", "message"), [
    (["--plot", "pie"], "--plot: pie is not one of progress, best"),
    (["--metric", "accuracy"], "--metric: 'accuracy' is not a metric of study toy (Q)"),
    (["--top", "0"], "--top: must be at least 1"),
])
def test_plot_names_a_bad_option_and_writes_nothing(
    done: Fixture, capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    assert done.cli("plot", STUDY, "--out", str(tmp_path / "p"), *argv) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "p").exists()
