"""Migrations: the migrated schema equals the models, old schemas are refused, concurrent starts are safe."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from pbt_service.core.types import Condition, Goal, Objective, ParameterSpec, ParameterType, StudyConfig
from pbt_service.store import schema
from pbt_service.store.config_json import config_to_json
from pbt_service.store.engine import make_engine
from pbt_service.store.errors import SchemaOutdatedError
from pbt_service.store.models import Base
from pbt_service.store.sql_storage import SqlStorage
from tests.store.store_driver import FULL_CONFIG

MIGRATE = "pbt-service migrate --database-url"
REPO = Path(__file__).resolve().parents[2]
SECOND_REVISION = '''"""Test-only revision on top of the shipped ones."""

import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("test_extra", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("test_extra")
'''


@pytest.fixture(params=["sqlite-file", pytest.param("postgresql", marks=pytest.mark.postgres)])
def file_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database that outlives one engine (not in-memory SQLite)."""
    if request.param == "sqlite-file":
        return f"sqlite:///{tmp_path / 'schema.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


def schema_diff(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrated_schema_equals_models(storage: SqlStorage) -> None:
    assert schema.current_revision(storage.engine) == schema.head_revision()
    assert schema_diff(storage.engine) == []


def test_upgrade_downgrade_upgrade(file_url: str) -> None:
    schema.upgrade(file_url)
    schema.upgrade(file_url)  # already at head: nothing to do
    engine = make_engine(file_url)
    try:
        assert schema.current_revision(engine) == schema.head_revision()
        assert set(schema.TABLES) <= set(inspect(engine).get_table_names())
        with engine.begin() as connection:
            command.downgrade(schema.alembic_config(connection), "base")
        assert schema.current_revision(engine) is None
        assert not set(schema.TABLES) & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    schema.ensure_schema(file_url)
    assert set(schema.TABLES) <= tables(file_url)


def test_outdated_schema_names_the_command(
    file_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema.upgrade(file_url)
    newer = tmp_path / "migrations"
    shutil.copytree(schema.MIGRATIONS_DIR, newer, ignore=shutil.ignore_patterns("__pycache__"))
    (newer / "versions" / "9001_extra.py").write_text(SECOND_REVISION.format(head=schema.head_revision()))
    monkeypatch.setattr(schema, "MIGRATIONS_DIR", newer)
    assert schema.head_revision() == "9001"
    with pytest.raises(SchemaOutdatedError, match="older than 9001") as caught:
        schema.ensure_schema(file_url)
    message = str(caught.value)
    assert MIGRATE in message and file_url.split("/")[-1] in message
    with pytest.raises(SchemaOutdatedError, match=MIGRATE):
        SqlStorage.from_url(file_url)
    schema.upgrade(file_url)
    schema.ensure_schema(file_url, auto_create=False)
    assert "test_extra" in tables(file_url)


def test_empty_database_without_auto_create(storage_url: str) -> None:
    with pytest.raises(SchemaOutdatedError, match=f"no schema; run `{MIGRATE}"):
        schema.ensure_schema(storage_url, auto_create=False)
    with pytest.raises(SchemaOutdatedError, match=MIGRATE):
        SqlStorage.from_url(storage_url, auto_create=False)


def test_tables_without_revision_are_refused(file_url: str) -> None:
    engine = make_engine(file_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE studies (id INTEGER PRIMARY KEY)"))
        with pytest.raises(
            SchemaOutdatedError, match="no pbt-service schema revision; use an empty database"
        ):
            schema.ensure_schema(engine)
        with pytest.raises(SchemaOutdatedError, match="use an empty database"):
            schema.upgrade(engine)
    finally:
        engine.dispose()


def test_unknown_revision_is_refused(file_url: str) -> None:
    schema.upgrade(file_url)
    engine = make_engine(file_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
        with pytest.raises(
            SchemaOutdatedError, match="revision ffff, which this pbt-service version does not know"
        ):
            schema.ensure_schema(engine)
    finally:
        engine.dispose()


def test_concurrent_ensure_schema_threads(file_url: str) -> None:
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def start() -> None:
        try:
            barrier.wait()
            SqlStorage.from_url(file_url).close()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    engine = make_engine(file_url)
    try:
        assert schema.current_revision(engine) == schema.head_revision()
        assert schema_diff(engine) == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_concurrent_ensure_schema_processes(fresh_postgres_url: str) -> None:
    code = "import sys; from pbt_service.store.schema import ensure_schema; ensure_schema(sys.argv[1])"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, fresh_postgres_url], cwd=REPO, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    failures = []
    for process in processes:
        _, stderr = process.communicate(timeout=60)
        if process.returncode != 0:
            failures.append(stderr)
    assert failures == []
    engine = make_engine(fresh_postgres_url)
    try:
        assert schema.current_revision(engine) == schema.head_revision()
    finally:
        engine.dispose()


def test_0002_backfills_the_stopped_counter(file_url: str) -> None:
    engine = make_engine(file_url)
    try:
        with engine.begin() as connection:
            command.upgrade(schema.alembic_config(connection), "0001")
            connection.execute(
                text("INSERT INTO studies (id, name, config_json, population_size, seed, state, trial_count, "
                     "create_time) VALUES (1, 's', '{}', 2, 0, 'active', 3, CURRENT_TIMESTAMP)")
            )  # fmt: skip
            for number, status in enumerate(("stopped", "completed", "stopped"), start=1):
                connection.execute(
                    text("INSERT INTO trials (study_id, number, generation, status, create_time) "
                         "VALUES (1, :n, 0, :s, CURRENT_TIMESTAMP)"),
                    {"n": number, "s": status},
                )  # fmt: skip
        schema.upgrade(engine)
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT stopped_count FROM studies")) == 2
        assert schema_diff(engine) == []
    finally:
        engine.dispose()


OLD_FORMAT = {  # what the hand-written codec of revisions 0001-0002 wrote, verbatim
    "full": '{"algorithm":{"max_generations":10,"max_trials":100,"median_stopping":{"enabled":true,'
    '"min_completed_trials":5,"min_measurements":2},"opponent_generations":3,"perturbation_factors":[0.5,2.0],'
    '"population_size":8,"seed":1099511627776,"steps_per_trial":1000},"comparison":"pareto","objectives":'
    '[{"goal":"maximize","metric":"accuracy"},{"goal":"minimize","metric":"loss"}],"parameters":[{"condition":'
    'null,"frozen":false,"high":0.1,"low":1e-05,"name":"lr","scale":"log","type":"float","values":[]},'
    '{"condition":null,"frozen":true,"high":6,"low":1,"name":"layers","scale":"linear","type":"integer",'
    '"values":[]},{"condition":null,"frozen":false,"high":0.0,"low":0.0,"name":"dropout","scale":"linear",'
    '"type":"discrete","values":[0.0,0.25,0.5]},{"condition":null,"frozen":false,"high":0.0,"low":0.0,"name":'
    '"optimizer","scale":"linear","type":"categorical","values":["adam","sgd"]},{"condition":{"parent":'
    '"optimizer","values":["sgd"]},"frozen":false,"high":0.99,"low":0.0,"name":"momentum","scale":"linear",'
    '"type":"float","values":[]}]}',
    "numbers": '{"algorithm":{"max_generations":0,"max_trials":0,"median_stopping":{"enabled":false,'
    '"min_completed_trials":3,"min_measurements":1},"opponent_generations":2,"perturbation_factors":[0.8,1.2],'
    '"population_size":10,"seed":0,"steps_per_trial":0},"comparison":"lexicographic","objectives":[{"goal":'
    '"minimize","metric":"loss"}],"parameters":[{"condition":null,"frozen":false,"high":3,"low":0,"name":"n",'
    '"scale":"linear","type":"integer","values":[]},{"condition":null,"frozen":false,"high":0.0,"low":0.0,'
    '"name":"d","scale":"linear","type":"discrete","values":[1,2,4]},{"condition":{"parent":"n","values":[1,2]},'
    '"frozen":false,"high":1.0,"low":-1.0,"name":"x","scale":"linear","type":"float","values":[]}]}',
    "sparse": '{"objectives":[{"metric":"acc"}],"parameters":[{"name":"c","type":"categorical","values":["a"]}]}',
}
EXPECTED = {
    "full": FULL_CONFIG,
    "numbers": StudyConfig(
        parameters=(
            ParameterSpec("n", ParameterType.INTEGER, low=0, high=3),
            ParameterSpec("d", ParameterType.DISCRETE, values=(1.0, 2.0, 4.0)),
            ParameterSpec("x", ParameterType.FLOAT, low=-1.0, high=1.0, condition=Condition("n", (1.0, 2.0))),
        ),
        objectives=(Objective("loss", Goal.MINIMIZE),),
    ),
    "sparse": StudyConfig(
        parameters=(ParameterSpec("c", ParameterType.CATEGORICAL, values=("a",)),), objectives=(Objective("acc"),)
    ),
}


def test_0003_rewrites_old_configs_and_drops_the_dead_columns(file_url: str) -> None:
    engine = make_engine(file_url)
    try:
        with engine.begin() as connection:
            command.upgrade(schema.alembic_config(connection), "0002")
            for i, (name, text_) in enumerate(OLD_FORMAT.items(), start=1):
                connection.execute(
                    text("INSERT INTO studies (id, name, config_json, population_size, seed, state, create_time) "
                         "VALUES (:i, :n, :c, 7, 5, 'active', CURRENT_TIMESTAMP)"),
                    {"i": i, "n": name, "c": text_},
                )  # fmt: skip
        schema.upgrade(engine)
        assert schema_diff(engine) == []
        assert not {"population_size", "seed"} & {c["name"] for c in inspect(engine).get_columns("studies")}
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT name, config_json FROM studies")).all()
        stored = {row.name: json.loads(row.config_json) for row in rows}
        # 0003 wrote the JSON of its day; later settings (`checkpoints`, the search settings) read
        # back as their defaults.
        assert stored == {name: _as_0003_wrote(config_to_json(config)) for name, config in EXPECTED.items()}
        storage = SqlStorage(engine)
        assert _configs(storage) == EXPECTED
        with engine.begin() as connection:
            command.downgrade(schema.alembic_config(connection), "0002")
        with engine.connect() as connection:
            old = connection.execute(text("SELECT name, config_json, population_size, seed FROM studies")).all()
        for name, config_json, population_size, seed in old:
            config = EXPECTED[name]
            assert (population_size, seed) == (config.algorithm.population_size, config.algorithm.seed)
            if name != "sparse":  # the old format spelled every key; "sparse" gains the defaults
                assert json.loads(config_json) == json.loads(OLD_FORMAT[name])
        schema.upgrade(engine)
        assert _configs(storage) == EXPECTED
    finally:
        engine.dispose()


def _as_0003_wrote(config_json: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(config_json)
    document.pop("checkpoints", None)
    for later in ("selection", "explore"):
        document["algorithm"].pop(later, None)
    return document


def _configs(storage: SqlStorage) -> dict[str, StudyConfig]:
    return {study.name: study.config for study in storage.run(lambda tx: tx.list_studies())}
