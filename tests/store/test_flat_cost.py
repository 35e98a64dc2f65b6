"""The statements of suggest, report and complete read a bounded number of rows through indexes
however long the history: their PostgreSQL plans on a study holding 20k trials, checked with
EXPLAIN ANALYZE (every statement runs in a transaction that is rolled back)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Connection, Executable, event

from benchmarks.load.history import STUDY, load_history, study_config
from pbt_service.converters import study_config_from_proto
from pbt_service.store import sql_queries as q
from pbt_service.store.engine import make_engine
from pbt_service.store.schema import upgrade
from pbt_service.store.sql_rows import MEASUREMENTS_BY_ID, MEASUREMENTS_OF_TRIALS, PARAMS_OF
from pbt_service.store.sql_storage import SqlStorage
from tests.conftest import _execute_autocommit

HISTORY, POPULATION = 20_000, 20
LAST = HISTORY - POPULATION + 1  # the first trial of the last (uninitiated) generation
BIG_TABLES = {"trials", "measurements", "measurement_metrics", "trial_params"}
NOW = datetime.now(timezone.utc)
STATEMENTS: dict[str, tuple[Executable, dict[str, Any]]] = {
    "lock_study": (q.lock_study, {"p_name": "load"}),
    "lock_study_for_suggestion": (q.lock_study_for_suggestion, {"p_name": "load", "p_worker": "w", "p_cutoff": NOW}),
    "stale_trials": (q.stale_trials, {"p_study": 1, "p_cutoff": NOW}),
    "active_of_worker": (q.active_of_worker, {"p_study": 1, "p_worker": "w"}),
    "any_active": (q.any_active, {"p_study": 1}),
    "view_head": (q.view_head, {"p_study": 1, "p_generation_limit": q.NO_GENERATION_LIMIT, "p_k": 2}),
    "opponent_at": (
        q.opponent_at,
        {"p_study": 1, "p_k": 2, "p_initiator": LAST, "p_generation": HISTORY // POPULATION - 1, "p_offset": 7},
    ),
    "params_of": (PARAMS_OF, {"p_ids": list(range(LAST, HISTORY + 1))}),
    "next_number": (q.next_number, {"p_name": "load", "p_initiator": LAST, "p_parent": LAST}),
    "create_trial_postgresql": (
        q.create_trial_postgresql,
        {
            "p_name": "load", "p_parent": LAST, "p_initiator": LAST, "p_generation": 1, "p_worker": "w",
            "p_checkpoint": "", "p_now": NOW, "p_names": ["x"], "p_kinds": ["float"], "p_floats": [0.5],
            "p_ints": [None], "p_strings": [None], "p_steps": 10, "p_lineage": "",
        },
    ),
    "insert_measurement_with_metrics_postgresql": (
        q.insert_measurement_with_metrics_postgresql,
        {
            "p_trial": LAST, "p_step": 10**6, "p_path": "", "p_elapsed": 0.0, "p_created": NOW, "p_limit": 256,
            "p_names": ["m"], "p_values": [1.0],
        },
    ),
    "claim_initiator": (q.claim_initiator, {"p_initiator": LAST, "p_child": LAST}),
    "trial_state": (q.trial_state, {"p_trial": LAST}),
    "renew_held_lease_for_new_step": (
        q.renew_held_lease_for_new_step,
        {"p_trial": LAST, "p_worker": "w", "p_valid_after": NOW - timedelta(hours=1), "p_now": NOW, "p_step": 1},
    ),
    "complete_with_latest": (
        q.complete_with_latest,
        {"p_trial": LAST, "p_status": "completed", "p_message": "", "p_end": NOW},
    ),
    "measurements_of_trials": (MEASUREMENTS_OF_TRIALS, {"p_ids": [LAST]}),
    "measurements_by_id": (MEASUREMENTS_BY_ID, {"p_ids": list(range(LAST, HISTORY + 1))}),
}


@pytest.fixture(scope="module")
def history(postgres_url: str) -> Iterator[Connection]:
    """A connection to a database whose study `load` holds HISTORY trials, EXPLAIN on."""
    database = "flat_cost"
    _execute_autocommit(postgres_url, f"DROP DATABASE IF EXISTS {database}", f"CREATE DATABASE {database}")
    url = postgres_url.rsplit("/", 1)[0] + f"/{database}"
    upgrade(url)
    storage = SqlStorage.from_url(url)
    config = study_config_from_proto(study_config(POPULATION))
    storage.run(lambda tx: tx.create_study(STUDY, config, NOW))
    storage.close()
    load_history(url, HISTORY, POPULATION)
    engine = make_engine(url)

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> Any:
        return "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters

    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()
        _execute_autocommit(postgres_url, f"DROP DATABASE IF EXISTS {database}")


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


@pytest.mark.postgres
@pytest.mark.parametrize("name", list(STATEMENTS))
def test_plan_reads_a_bounded_number_of_rows_through_indexes(history: Connection, name: str) -> None:
    statement, params = STATEMENTS[name]
    with history.begin() as transaction:
        (document,) = history.execute(statement, params).one()
        transaction.rollback()
    plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
    scanned = [(n["Node Type"], n.get("Relation Name")) for n in nodes(plan)]
    assert not [s for s in scanned if s[0] == "Seq Scan" and s[1] in BIG_TABLES], scanned
    most = max(n["Actual Rows"] * n["Actual Loops"] for n in nodes(plan))
    assert most <= 4 * POPULATION, (most, scanned)
