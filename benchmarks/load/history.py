"""The benchmark's study: created through the gRPC API, then given a history of completed trials
by bulk-inserting rows (sending 100k trials through the API would take longer than the benchmark).

The loader reflects the tables from the database instead of importing the service's models, and
`check_history` asks the service, through the API, for the next trial and verifies it lands in the
generation after the history: if the schema or its meaning changes, the benchmark stops with a
message naming this file instead of measuring a study the service does not see as intended.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

import grpc
from sqlalchemy import MetaData, Table, insert, text, update

from benchmarks.load.system import BenchmarkError, engine_for
from pbt_service.api.v1 import pbt_service_pb2, pbt_service_pb2_grpc, study_pb2, trial_pb2

STUDY = "load"
HP = ("lr", "h")
CHUNK = 5000


def study_config(population: int) -> study_pb2.StudyConfig:
    """Two float parameters (one log-scaled), one maximized metric, seed 1."""
    return study_pb2.StudyConfig(
        parameters=[
            study_pb2.ParameterSpec(
                name="lr", float_range=study_pb2.FloatRange(low=1e-4, high=1.0, scale=study_pb2.SCALE_LOG)
            ),
            study_pb2.ParameterSpec(name="h", float_range=study_pb2.FloatRange(low=0.0, high=1.0)),
        ],
        objectives=[study_pb2.Objective(metric="score", goal=study_pb2.MAXIMIZE)],
        algorithm=study_pb2.AlgorithmConfig(population_size=population, seed=1),
    )


def create_study(address: str, population: int) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = pbt_service_pb2_grpc.PbtServiceStub(channel)
        stub.CreateStudy(pbt_service_pb2.CreateStudyRequest(name=STUDY, config=study_config(population)), timeout=60)


def _missing_required(table: Table, row: dict[str, Any]) -> list[str]:
    return [
        c.name for c in table.columns
        if not c.nullable and c.name not in row and c.server_default is None and c.autoincrement is not True
    ]  # fmt: skip


def load_history(url: str, trials: int, population: int) -> None:
    """Bulk-inserts `trials` completed trials into the study: full generations, every trial but the
    last generation's having initiated its lineage's next one, one measurement each."""
    if trials % population:
        raise BenchmarkError(f"history {trials} is not a whole number of generations of {population}")
    engine = engine_for(url)
    postgres = engine.dialect.name == "postgresql"
    meta = MetaData()
    names = ("studies", "trials", "trial_params", "measurements", "measurement_metrics")
    try:
        meta.reflect(engine, only=names)
    except Exception as error:
        raise BenchmarkError(f"the service's tables changed ({error}): update benchmarks/load/history.py") from error
    studies, trials_t, params_t, measurements_t, metrics_t = (meta.tables[n] for n in names)
    now = datetime.now(timezone.utc) - timedelta(days=1)
    stamp = now if postgres else now.replace(tzinfo=None)
    rng = random.Random(0)

    def rows(table: Table, values: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = [{k: v for k, v in row.items() if k in table.columns} for row in values]
        if kept and (missing := _missing_required(table, kept[0])):
            raise BenchmarkError(f"table {table.name} has new required columns {missing}: "
                                 "update benchmarks/load/history.py")  # fmt: skip
        return kept

    with engine.begin() as connection:
        study_id = connection.scalar(text("SELECT id FROM studies WHERE name = :n"), {"n": STUDY})
        for start in range(0, trials, CHUNK):
            ids = range(start + 1, min(trials, start + CHUNK) + 1)
            trial_rows = [_trial_row(i, study_id, population, stamp) for i in ids]
            connection.execute(insert(trials_t), rows(trials_t, trial_rows))
            params = [{"trial_id": i, "name": n, "kind": "float", "float_value": rng.random()} for i in ids for n in HP]
            connection.execute(insert(params_t), rows(params_t, params))
            connection.execute(insert(measurements_t), rows(measurements_t, [
                {"id": i, "trial_id": i, "step": 10 * (1 + (i - 1) // population), "checkpoint_path": f"/c/{i}",
                 "elapsed_seconds": 1.0, "create_time": stamp} for i in ids
            ]))  # fmt: skip
            metrics = [{"measurement_id": i, "name": "score", "value": rng.random()} for i in ids]
            connection.execute(insert(metrics_t), rows(metrics_t, metrics))
        connection.execute(
            update(trials_t)
            .where(trials_t.c.study_id == study_id, trials_t.c.generation < trials // population - 1)
            .values(initiated_trial_id=trials_t.c.id + population)
        )
        connection.execute(update(studies).where(studies.c.id == study_id).values(trial_count=trials))
        if postgres:
            for table in ("trials", "measurements"):
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {trials})"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE" if postgres else "ANALYZE"))
    engine.dispose()


def _trial_row(i: int, study_id: int, population: int, now: datetime) -> dict[str, Any]:
    generation = (i - 1) // population
    before = i - population if generation > 0 else None
    return {
        "id": i, "study_id": study_id, "number": i, "generation": generation, "status": "completed",
        "worker_id": f"history-{i % population}", "warm_start_checkpoint_path": f"/c/{before}" if before else "",
        "parent_trial_id": before, "initiator_parent_trial_id": before, "initiated_trial_id": None,
        "stop_requested": False, "status_message": "", "final_measurement_id": i, "create_time": now,
        "heartbeat_time": now, "end_time": now,
    }  # fmt: skip


def check_history(address: str, trials: int, population: int) -> None:
    """One full cycle through the API; its trial must be the first of the generation after the
    history (else the service does not read the bulk-loaded rows as the benchmark means them)."""
    with grpc.insecure_channel(address) as channel:
        stub = pbt_service_pb2_grpc.PbtServiceStub(channel)
        reply = stub.GetNewSuggestion(pbt_service_pb2.GetNewSuggestionRequest(study=STUDY, worker_id="check"),
                                      timeout=60)  # fmt: skip
        expected = trials // population if trials else 0
        if not reply.trials or reply.trials[0].generation != expected:
            got = reply.trials[0].generation if reply.trials else "no trial"
            raise BenchmarkError(f"after loading {trials} trials the service suggested generation {got}, expected "
                                 f"{expected}: update benchmarks/load/history.py to the service's schema")  # fmt: skip
        trial_id = reply.trials[0].id
        measurement = trial_pb2.Measurement(step=1, metrics={"score": 0.5})
        stub.ReportMeasurement(pbt_service_pb2.ReportMeasurementRequest(
            trial_id=trial_id, worker_id="check", measurement=measurement), timeout=60)  # fmt: skip
        stub.CompleteTrial(pbt_service_pb2.CompleteTrialRequest(trial_id=trial_id, worker_id="check"), timeout=60)
