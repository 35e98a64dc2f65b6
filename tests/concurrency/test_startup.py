"""Replicas starting together on an empty database, and a replica refusing an older schema."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from alembic import command

from pbt_service.store import schema
from pbt_service.store.engine import make_engine
from tests.concurrency.conftest import ServiceProcess, start_services
from worker_client import PbtClient


@pytest.mark.postgres
def test_replicas_starting_at_once_on_an_empty_database(
    fresh_postgres_url: str, services: list[ServiceProcess], tmp_path: Path
) -> None:
    replicas = start_services(services, fresh_postgres_url, tmp_path, 4)
    for replica in replicas:
        with PbtClient(replica.address) as client:
            assert client.list_studies() == []
    engine = make_engine(fresh_postgres_url)
    try:
        assert schema.current_revision(engine) == schema.head_revision()
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_replica_refuses_an_older_schema_and_names_the_upgrade(fresh_postgres_url: str, tmp_path: Path) -> None:
    engine = make_engine(fresh_postgres_url)
    try:
        with engine.begin() as connection:
            command.upgrade(schema.alembic_config(connection), "0001")
    finally:
        engine.dispose()
    service = ServiceProcess(fresh_postgres_url, tmp_path / "service.log")
    process = service.launch()
    try:
        assert process.wait(timeout=60) == 2
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert f"pbt-service migrate --database-url {fresh_postgres_url.split('://')[0]}" in service.log()
    assert "older than" in service.log()
    schema.upgrade(fresh_postgres_url)
    service.start().stop()
