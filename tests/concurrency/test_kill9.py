"""The service killed with SIGKILL at random moments while workers run, then started again: the
study goes on and nothing the service acknowledged is lost."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from tests.concurrency.conftest import ServiceProcess
from tests.concurrency.fleet import Faults, FleetLog, run_fleet
from tests.concurrency.invariants import check_finished_study
from tests.service.conftest import simple_config
from worker_client import PbtClient


@pytest.mark.postgres
@pytest.mark.slow
def test_kill_9_and_restart_loses_nothing(fresh_postgres_url: str, tmp_path: Path) -> None:
    service = ServiceProcess(fresh_postgres_url, tmp_path / "service.log", "--retry-after-seconds", "0.05")
    service.start()
    population, generations = 6, 60
    with PbtClient(service.address) as client:
        client.create_study("kill9", simple_config(population, max_generations=generations, seed=9))
    result: list[FleetLog] = []
    failures: list[BaseException] = []

    def work() -> None:
        try:
            result.append(run_fleet([service.address], "kill9", 12, Faults(repeat=0.1), seed=4))
        except BaseException as e:  # reported below
            failures.append(e)

    fleet = threading.Thread(target=work)
    rng = random.Random(11)
    killed_pids: list[int] = []
    try:
        fleet.start()
        for _ in range(3):
            time.sleep(rng.uniform(0.2, 0.8))
            assert fleet.is_alive(), failures or "the study ended before the service was killed"
            assert service.process is not None
            killed_pids.append(service.process.pid)
            service.kill()
            service.start()
        fleet.join(timeout=120)
    finally:
        service.stop()
    assert not fleet.is_alive() and result, failures or "the fleet did not finish"
    check_finished_study(
        fresh_postgres_url, "kill9", population=population, generations=generations, acked=result[0].acked
    )
    assert len(killed_pids) == 3
