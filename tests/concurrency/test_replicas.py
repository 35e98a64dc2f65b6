"""Several service processes on one database, many workers with faults: every decision is taken
exactly once (checked from the database afterwards)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.concurrency.conftest import ServiceProcess, start_services
from tests.concurrency.fleet import Faults, assert_vanished_trials_expired, run_fleet
from tests.concurrency.invariants import check_finished_study
from tests.service.conftest import simple_config
from worker_client import PbtClient

FAULTS = Faults(repeat=0.2, fail=0.05, stop=0.05, vanish=0.02)
OPTIONS = ("--lease-seconds", "3", "--retry-after-seconds", "0.1")


@pytest.mark.postgres
@pytest.mark.slow
def test_two_replicas_32_workers_postgres(
    fresh_postgres_url: str, services: list[ServiceProcess], tmp_path: Path
) -> None:
    replicas = start_services(services, fresh_postgres_url, tmp_path, 2, OPTIONS)
    addresses = [r.address for r in replicas]
    population, generations = 16, 20
    with PbtClient(addresses[0]) as client:
        client.create_study("fleet", simple_config(population, max_generations=generations, seed=3))
    log = run_fleet(addresses, "fleet", 32, FAULTS, seed=1)
    trials = check_finished_study(
        fresh_postgres_url, "fleet", population=population, generations=generations, acked=log.acked
    )
    assert len(trials) >= population * generations and len(log.acked) >= 2 * population * generations
    assert log.vanished, "no worker vanished: the lease path was not exercised"
    assert_vanished_trials_expired(addresses, log)
    assert all(r.process is not None and r.process.poll() is None for r in replicas)


def test_two_replicas_on_one_sqlite_file(services: list[ServiceProcess], tmp_path: Path) -> None:
    """SQLite in WAL mode with a busy timeout: correct with a few local workers and processes."""
    url = f"sqlite:///{tmp_path / 'pbt.db'}"
    replicas = start_services(services, url, tmp_path, 2, OPTIONS)
    addresses = [r.address for r in replicas]
    with PbtClient(addresses[0]) as client:
        client.create_study("local", simple_config(4, max_generations=8, seed=5))
    log = run_fleet(addresses, "local", 8, Faults(repeat=0.2, fail=0.05, stop=0.05), seed=2)
    check_finished_study(url, "local", population=4, generations=8, acked=log.acked)
