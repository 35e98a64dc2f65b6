"""docs/schema.md stays true: every table, column and index of the live schema is documented
there, and every query it shows runs on SQLite and PostgreSQL and answers what the client says.

The module builds one real study per backend, once: the toy example (population 4, 4 generations,
two checkpoints per trial) on the real service and worker, with one trial that diverges to NaN
(stored as NULL), one that diverges to +inf, one whose trainer fails, and a second study in the
same database that the queries must leave out. The queries run on a read-only connection, as the
document recommends (`?mode=ro` for SQLite, the document's read-only role for PostgreSQL).
"""

from __future__ import annotations

import math
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, Row, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from examples.toy import problem
from pbt_service.core.fitness import fitness
from pbt_service.core.lineage import ScheduleSegment
from pbt_service.core.types import ParamValue
from pbt_service.local import LocalService
from pbt_service.store.engine import normalize_url
from pbt_service.store.schema import head_revision
from worker_client import (
    Comparison,
    Goal,
    Objective,
    PbtClient,
    Study,
    StudyConfig,
    StudyState,
    Trial,
    TrialContext,
    TrialStatus,
    Worker,
)
from worker_client.context import step_of_checkpoint
from worker_client.results import best, trial_schedule

DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"
BLOCK = re.compile(r"<!-- (query|setup): ([\w.]+) -->\n```sql\n(.*?)```", re.DOTALL)
BACKENDS = ("sqlite", "postgresql")
STUDY, OTHER, METRIC = "toy", "other", "Q"
FATES = {3: "nan", 6: "inf", 9: "fail"}
"""What goes wrong, by the order in which the worker meets the toy study's trials."""
OTHER_FATES = {1: "nan", 2: "nan"}
"""The other study's generation 0 diverges whole, so its generation 1 restarts from fresh samples."""
STATUS_ORDER = (TrialStatus.ACTIVE, TrialStatus.COMPLETED, TrialStatus.STOPPED, TrialStatus.FAILED)
"""The status columns of the `generation_progress` query."""
SQLITE_MS = 2e-3
"""SQLite's julianday() resolves milliseconds."""
SLOW_SECONDS = 0.1
"""How long the failing trial takes at least: far more than SQLite's resolution."""


def doc_blocks(kind: str) -> dict[str, str]:
    """The fenced SQL blocks of the document keyed by their `<!-- kind: key -->` line."""
    return {key: sql for found, key, sql in BLOCK.findall(DOC.read_text()) if found == kind}


QUERIES = doc_blocks("query")
QUERY_NAMES = sorted({key.split(".")[0] for key in QUERIES})


def query_sql(name: str, backend: str) -> str:
    """The backend's own block when the document has one, else the portable one."""
    return QUERIES.get(f"{name}.{backend}") or QUERIES[name]


# --- the study -----------------------------------------------------------------------------------


class Toy:
    """The toy problem, trained in two halves (two checkpoints, two measurements per trial), with
    an extra metric that is not an objective, and chosen trials sabotaged by `FATES`."""

    def __init__(self, fates: Mapping[int, str]) -> None:
        self.fates = fates
        self.order: dict[int, int] = {}
        self.lock = threading.Lock()

    def fate(self, trial_id: int) -> str:
        with self.lock:
            ordinal = self.order.setdefault(trial_id, len(self.order) + 1)
        return self.fates.get(ordinal, "")

    def train(self, ctx: TrialContext) -> None:
        if self.fate(ctx.trial_id) == "fail":
            time.sleep(SLOW_SECONDS)
            raise RuntimeError("sabotaged by the test")
        steps = ctx.steps or problem.DEFAULT_STEPS
        first = max(steps // 2, 1)
        problem.train(replace(ctx, steps=first))
        if steps > first:
            halfway = step_of_checkpoint(ctx.warm_start_checkpoint_path) + first
            problem.train(
                replace(ctx, steps=steps - first, warm_start_checkpoint_path=str(ctx.checkpoint_path(halfway)))
            )

    def evaluate(self, ctx: TrialContext, checkpoint: Path) -> dict[str, float]:
        metrics = dict(problem.evaluate(ctx, checkpoint))
        metrics["theta_norm"] = float(np.linalg.norm(problem.load_theta(checkpoint)))
        fate = self.fate(ctx.trial_id)
        if fate == "nan":
            metrics[METRIC] = math.nan
        elif fate == "inf":
            metrics[METRIC] = math.inf
        return metrics


def other_config() -> StudyConfig:
    """Two objectives, Pareto, and zero `steps_per_trial` and seed (which the JSON leaves out)."""
    toy = problem.study_config(population_size=2, max_generations=2, steps_per_trial=0, seed=0)
    return replace(
        toy,
        objectives=(Objective(METRIC, Goal.MAXIMIZE), Objective("theta_norm", Goal.MINIMIZE)),
        comparison=Comparison.PARETO,
    )


@dataclass
class Built:
    """The finished studies on one backend as the client reads them, the service still running,
    and a read-only engine on the same database."""

    backend: str
    client: PbtClient
    reader: Engine
    studies: dict[str, Study]
    trials: dict[str, list[Trial]]

    def run(self, name: str, **params: object) -> list[Row[Any]]:
        with self.reader.connect() as connection:
            return list(connection.execute(text(query_sql(name, self.backend)), params).all())

    def by_id(self) -> dict[int, Trial]:
        return {t.id: t for trials in self.trials.values() for t in trials}


def admin_engine(url: str) -> Engine:
    return create_engine(normalize_url(url), isolation_level="AUTOCOMMIT", poolclass=NullPool)


def read_only_role(admin: Engine, database: str, schema: str, role: str) -> None:
    """Runs the document's read-only role block, renamed to this test's database, schema and role."""
    sql = doc_blocks("setup")["read_only_role.postgresql"]
    for old, new in {
        "DATABASE pbt ": f'DATABASE "{database}" ',
        "SCHEMA public ": f'SCHEMA "{schema}" ',
        "FOR ROLE pbt ": "FOR ROLE CURRENT_USER ",
        "pbt_reader": role,
    }.items():
        assert old in sql, f"the read-only role block no longer says {old!r}: update this test"
        sql = sql.replace(old, new)
    with admin.connect() as connection:
        for statement in filter(str.strip, sql.split(";")):
            connection.execute(text(statement))


@pytest.fixture(scope="module", params=[BACKENDS[0], pytest.param(BACKENDS[1], marks=pytest.mark.postgres)])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    folder = tmp_path_factory.mktemp(f"schema-docs-{request.param}")
    cleanup: list[Callable[[], None]] = []
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'pbt.db'}"
        reader_url = f"sqlite:///file:{folder / 'pbt.db'}?mode=ro&uri=true"
    else:
        server_url: str = request.getfixturevalue("postgres_url")
        suffix = uuid.uuid4().hex[:12]
        schema, role = f"schema_docs_{suffix}", f"schema_reader_{suffix}"
        admin = admin_engine(server_url)
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))

        def drop() -> None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                if connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
                    connection.execute(text(f'DROP OWNED BY "{role}"'))
                    connection.execute(text(f'DROP ROLE "{role}"'))
            admin.dispose()

        cleanup.append(drop)
        base = make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
        url = base.render_as_string(hide_password=False)
        reader_url = base.set(username=role, password="change-me").render_as_string(hide_password=False)
    try:
        with LocalService(url) as service, PbtClient(service.address) as client:
            other = Toy(OTHER_FATES)
            client.create_study(OTHER, other_config())
            Worker(client, OTHER, other.train, other.evaluate, worker_id="w-other", workdir=folder / "runs").run()
            toy = Toy(FATES)
            client.create_study(STUDY, problem.study_config(population_size=4, max_generations=4, seed=1))
            Worker(client, STUDY, toy.train, toy.evaluate, worker_id="w-toy", workdir=folder / "runs").run()
            if request.param == "postgresql":
                database = make_url(server_url).database
                assert database is not None
                read_only_role(admin, database, schema, role)
            reader = create_engine(normalize_url(reader_url), poolclass=NullPool)
            cleanup.insert(0, reader.dispose)
            names = (STUDY, OTHER)
            yield Built(
                request.param,
                client,
                reader,
                {name: client.get_study(name) for name in names},
                {name: client.list_trials(name) for name in names},
            )
    finally:
        for step in cleanup:
            step()


# --- what the client says ------------------------------------------------------------------------


def final_value(trial: Trial, metric: str = METRIC) -> float | None:
    """The final value as the database holds it: None for NaN or no such metric."""
    final = trial.final_measurement
    if final is None or metric not in final.metrics or math.isnan(final.metrics[metric]):
        return None
    return final.metrics[metric]


def stored(value: float | None) -> float | None:
    """A metric as it comes back from SQL: None for NULL (NaN)."""
    return None if value is None else float(value)


def diverged(trial: Trial, built: Built) -> bool:
    return fitness(trial.final_measurement, built.studies[trial.study].config.objectives) is None


def param_value(row: Row[Any]) -> ParamValue:
    if row.kind == "float":
        return float(row.float_value)
    if row.kind == "int":
        return int(row.int_value)
    return str(row.string_value)


def walk(trial_id: int | None, link: Callable[[Trial], int | None], trials: Mapping[int, Trial]) -> list[int]:
    """`trial_id` and the trials reached by following `link`, nearest first."""
    chain: list[int] = []
    while trial_id is not None:
        chain.append(trial_id)
        trial_id = link(trials[trial_id])
    return chain


# --- one check per documented query --------------------------------------------------------------


def check_best_trials(built: Built) -> None:
    trials = built.trials[STUDY]
    rows = built.run("best_trials", study=STUDY, metric=METRIC)
    ranking = [t.id for t in best(built.client, built.studies[STUDY], top=len(trials))]
    completed = [t for t in trials if t.status is TrialStatus.COMPLETED]
    diverged_ids = [t.id for t in completed if diverged(t, built)]
    values = {final_value(t) for t in completed if diverged(t, built)}
    assert None in values and math.inf in values, "the study must hold a NaN and an +inf diverged trial"
    assert [r.trial_id for r in rows] == ranking + diverged_ids
    assert [r.diverged for r in rows] == [0] * len(ranking) + [1] * len(diverged_ids)
    by_id = built.by_id()
    for row in rows:
        trial = by_id[row.trial_id]
        assert trial.final_measurement is not None
        assert (row.number, row.generation, row.step) == (trial.number, trial.generation, trial.final_measurement.step)
        assert stored(row.metric_value) == final_value(trial)
        assert row.checkpoint_path == trial.final_measurement.checkpoint_path
        assert row.checkpoint_state == trial.final_measurement.checkpoint_state.value


def check_schedule(built: Built) -> None:
    for trial in built.trials[STUDY]:
        rows = built.run("schedule", trial_id=trial.id)
        segments: list[ScheduleSegment] = []
        for row in rows:
            if not segments or segments[-1].trial_id != row.trial_id:
                segments.append(
                    ScheduleSegment(
                        row.trial_id, row.generation, row.start_step, row.end_step, {}, row.warm_start_trial_id
                    )
                )
            if row.param is not None:
                segments[-1].hparams[row.param] = param_value(row)
        assert segments == trial_schedule(built.client, trial), f"trial {trial.id}"
    longest = max(len(trial_schedule(built.client, t)) for t in built.trials[STUDY])
    assert longest == 4, "the last generation's schedules span every generation"


def check_lineage(built: Built) -> None:
    by_id = built.by_id()
    children: dict[int, list[int]] = {}
    for t in by_id.values():
        if t.parent_trial_id is not None:
            children.setdefault(t.parent_trial_id, []).append(t.id)
    for trial in built.trials[STUDY]:
        expected = [(-d, i) for d, i in enumerate(walk(trial.parent_trial_id, lambda t: t.parent_trial_id, by_id), 1)]
        level, distance = [trial.id], 0
        while level:
            expected += [(distance, i) for i in level]
            level, distance = [c for i in level for c in children.get(i, [])], distance + 1
        rows = built.run("lineage", trial_id=trial.id, metric=METRIC)
        assert [(r.distance, r.trial_id) for r in rows] == sorted(expected), f"trial {trial.id}"
        for row in rows:
            related = by_id[row.trial_id]
            assert (row.number, row.generation, row.status) == (
                related.number,
                related.generation,
                related.status.value,
            )
            assert (row.parent_trial_id, row.initiator_parent_trial_id) == (
                related.parent_trial_id,
                related.initiator_parent_trial_id,
            )
            assert stored(row.metric_value) == final_value(related)
    assert any(len(children.get(t.id, [])) > 1 for t in built.trials[STUDY]), "a trial with several children"


def check_member_slot(built: Built) -> None:
    by_id = built.by_id()
    moves: Counter[str | None] = Counter()
    for trial in by_id.values():
        chain = walk(trial.id, lambda t: t.initiator_parent_trial_id, by_id)
        expected = []
        for member in sorted((by_id[i] for i in chain), key=lambda t: (t.generation, t.id)):
            if member.initiator_parent_trial_id is None:
                move = None
            elif member.parent_trial_id == member.initiator_parent_trial_id:
                move = "continued"
            else:
                move = "restarted" if member.parent_trial_id is None else "exploited"
            expected.append((member.id, member.generation, member.status.value, move))
            moves[move] += trial.id == member.id
        rows = built.run("member_slot", trial_id=trial.id)
        assert [(r.trial_id, r.generation, r.status, r.move) for r in rows] == expected, f"trial {trial.id}"
    assert moves["continued"] and moves["exploited"] and moves["restarted"], "every move must occur"


def check_status_counts(built: Built) -> None:
    for name, trials in built.trials.items():
        rows = built.run("status_counts", study=name)
        counts = Counter(t.status.value for t in trials)
        highest = {s: max(t.generation for t in trials if t.status.value == s) for s in counts}
        assert {r.status: (r.trials, r.highest_generation) for r in rows} == {
            s: (counts[s], highest[s]) for s in counts
        }
        assert [r.status for r in rows] == sorted(counts)
    assert {"completed", "failed"} <= {t.status.value for t in built.trials[STUDY]}


def check_generation_progress(built: Built) -> None:
    for name, trials in built.trials.items():
        rows = built.run("generation_progress", study=name, metric=METRIC)
        expected = []
        for generation in sorted({t.generation for t in trials}):
            members = [t for t in trials if t.generation == generation]
            counts = Counter(t.status for t in members)
            gone = sum(t.status is TrialStatus.COMPLETED and diverged(t, built) for t in members)
            expected.append((generation, *(counts[s] for s in STATUS_ORDER), gone))
        assert [(r.generation, r.active, r.completed, r.stopped, r.failed, r.diverged) for r in rows] == expected
    assert sum(r.diverged for r in built.run("generation_progress", study=STUDY, metric=METRIC)) == 2


def check_study_settings(built: Built) -> None:
    for name, study in built.studies.items():
        (row,) = built.run("study_settings", study=name)
        algorithm = study.config.algorithm
        stopped = sum(t.status is TrialStatus.STOPPED for t in built.trials[name])
        assert (row.name, row.state, bool(row.paused)) == (name, study.state.value, False)
        assert (row.trial_count, row.stopped_count) == (study.trial_count, stopped)
        assert study.trial_count == len(built.trials[name])
        settings = (row.population_size, row.max_generations, row.steps_per_trial, row.seed, row.comparison)
        assert settings == (
            algorithm.population_size,
            algorithm.max_generations,
            algorithm.steps_per_trial,
            algorithm.seed,
            study.config.comparison.name,
        )
    assert built.studies[OTHER].config.algorithm.steps_per_trial == 0, "a zero field, left out of the JSON"


def check_objectives(built: Built) -> None:
    for name, study in built.studies.items():
        rows = built.run("objectives", study=name)
        expected = [(i, o.metric, o.goal.name) for i, o in enumerate(study.config.objectives)]
        assert [(r.priority, r.metric, r.goal) for r in rows] == expected
    assert len(built.studies[OTHER].config.objectives) == 2


def check_learning_curve(built: Built) -> None:
    for trial in built.trials[STUDY]:
        rows = built.run("learning_curve", trial_id=trial.id, metric=METRIC)
        final_step = trial.final_measurement.step if trial.final_measurement is not None else None
        expected = [
            (
                m.step,
                None if math.isnan(m.metrics[METRIC]) else m.metrics[METRIC],
                m.elapsed_seconds,
                m.checkpoint_path,
                m.checkpoint_state.value,
                int(m.step == final_step),
            )
            for m in trial.measurements
        ]
        got = [
            (r.step, stored(r.metric_value), r.elapsed_seconds, r.checkpoint_path, r.checkpoint_state, r.is_final)
            for r in rows
        ]
        assert got == expected, f"trial {trial.id}"
    assert max(len(t.measurements) for t in built.trials[STUDY]) >= 2, "a curve of several points"


def check_trial_durations(built: Built) -> None:
    tolerance = SQLITE_MS if built.backend == "sqlite" else 1e-6
    longest = 0.0
    for name, trials in built.trials.items():
        rows = built.run("trial_durations", study=name)
        ended = [t for t in trials if t.end_time is not None and t.create_time is not None]
        assert [r.trial_id for r in rows] == [t.id for t in ended]
        for row, trial in zip(rows, ended, strict=True):
            assert trial.end_time is not None and trial.create_time is not None
            seconds = (trial.end_time - trial.create_time).total_seconds()
            assert (row.status, row.worker_id) == (trial.status.value, trial.worker_id)
            assert float(row.seconds) == pytest.approx(seconds, abs=tolerance)
            longest = max(longest, seconds)
    assert longest >= SLOW_SECONDS, "a duration long enough to tell seconds from other units"


CHECKS: dict[str, Callable[[Built], None]] = {
    "best_trials": check_best_trials,
    "schedule": check_schedule,
    "lineage": check_lineage,
    "member_slot": check_member_slot,
    "status_counts": check_status_counts,
    "generation_progress": check_generation_progress,
    "study_settings": check_study_settings,
    "objectives": check_objectives,
    "learning_curve": check_learning_curve,
    "trial_durations": check_trial_durations,
}


# --- tests ---------------------------------------------------------------------------------------


def test_every_documented_query_is_checked_and_exists_for_both_backends() -> None:
    assert set(QUERY_NAMES) == set(CHECKS)
    for name in QUERY_NAMES:
        variants = {key.partition(".")[2] for key in QUERIES if key.split(".")[0] == name}
        assert variants in ({""}, set(BACKENDS)), f"{name}: one portable block, or one per backend"
    assert set(doc_blocks("setup")) == {"read_only_role.postgresql"}


@pytest.mark.parametrize("name", QUERY_NAMES)
def test_documented_query_answers_what_the_client_says(built: Built, name: str) -> None:
    CHECKS[name](built)


def test_the_study_went_wrong_as_planned(built: Built) -> None:
    """The premises of the checks: NaN is NULL, +inf is stored as such, a failure has no final."""
    trials = built.trials[STUDY]
    nan = [t for t in trials if t.final_measurement is not None and math.isnan(t.final_measurement.metrics[METRIC])]
    inf = [t for t in trials if final_value(t) == math.inf]
    failed = [t for t in trials if t.status is TrialStatus.FAILED]
    assert len(nan) == len(inf) == len(failed) == 1
    assert nan[0].status is inf[0].status is TrialStatus.COMPLETED
    assert failed[0].final_measurement is None
    sql = """SELECT mm.value FROM trials AS t
             JOIN measurement_metrics AS mm ON mm.measurement_id = t.final_measurement_id AND mm.name = :metric
             WHERE t.id = :trial_id"""
    with built.reader.connect() as connection:
        values = [connection.execute(text(sql), {"trial_id": t.id, "metric": METRIC}).scalar_one() for t in nan + inf]
    assert values == [None, math.inf]


def test_a_plain_order_by_does_not_put_diverged_trials_last(built: Built) -> None:
    """Why the documented ranking sorts on a diverged flag: +inf (and, on PostgreSQL, NULL) come first."""
    sql = """SELECT mm.value FROM trials AS t JOIN studies AS s ON s.id = t.study_id
             JOIN measurement_metrics AS mm ON mm.measurement_id = t.final_measurement_id AND mm.name = :metric
             WHERE s.name = :study AND t.status = 'completed' ORDER BY mm.value DESC"""
    with built.reader.connect() as connection:
        values = connection.execute(text(sql), {"study": STUDY, "metric": METRIC}).scalars().all()
    if built.backend == "postgresql":
        assert values[0] is None and values[1] == math.inf
    else:
        assert values[0] == math.inf and values[-1] is None


def test_the_reader_cannot_write(built: Built) -> None:
    """The read-only connections the document recommends refuse writes."""
    with pytest.raises(DBAPIError), built.reader.begin() as connection:
        connection.execute(text("UPDATE studies SET paused = :p"), {"p": True})
    with built.reader.connect() as connection:
        assert [bool(p) for p in connection.execute(text("SELECT paused FROM studies")).scalars()] == [False, False]
    assert built.client.get_study(STUDY).state is StudyState.DONE


def documented_columns() -> dict[str, list[str]]:
    """The rows of the `| column | type | null | meaning |` table of each `### `table`` section."""
    sections = re.split(r"^### `(\w+)`\n", DOC.read_text(), flags=re.MULTILINE)
    columns: dict[str, list[str]] = {}
    for table, body in zip(sections[1::2], sections[2::2], strict=True):
        rows = body.split("| column | type | null | meaning |\n", 1)[1].split("\n\n", 1)[0]
        columns[table] = re.findall(r"^\| `(\w+)` \|", rows, flags=re.MULTILINE)
    return columns


def test_every_table_column_and_index_of_the_live_schema_is_documented(built: Built) -> None:
    documented = documented_columns()
    text_of_doc = DOC.read_text()
    live = inspect(built.reader)
    tables = live.get_table_names()
    assert {"studies", "trials", "trial_params", "measurements", "measurement_metrics", "alembic_version"} <= set(
        tables
    )
    assert sorted(documented) == sorted(tables)
    for table in tables:
        columns = [c["name"] for c in live.get_columns(table)]
        assert sorted(documented[table]) == sorted(columns), table
        for index in live.get_indexes(table):
            assert f"`{index['name']}`" in text_of_doc, f"index {index['name']} of {table}"
    assert f"Alembic revision `{head_revision()}`" in text_of_doc
    with built.reader.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()
