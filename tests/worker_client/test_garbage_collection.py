"""Garbage collection deletes evaluated intermediate checkpoints and keeps every final one."""

from __future__ import annotations

from pathlib import Path

from pbt_service.core.types import TrialStatus
from pbt_service.local import LocalService
from tests.service.conftest import simple_config
from tests.worker_client.test_worker_end_to_end import evaluate, train
from worker_client import PbtClient, Worker
from worker_client.garbage_collection import collect_garbage
from worker_client.results_cli import main as results_main


def test_gc_keeps_finals_and_deletes_the_rest(tmp_path: Path) -> None:
    with LocalService(f"sqlite:///{tmp_path / 'gc.db'}") as service, PbtClient(service.address) as client:
        client.create_study("gc", simple_config(population=2, max_generations=3))
        Worker(client, "gc", train, evaluate, worker_id="w", workdir=tmp_path / "runs").run()
        trials = client.list_trials("gc")
        assert results_main(["--service", service.address, "gc", "gc", "--dry-run"]) == 0
        assert all(Path(m.checkpoint_path).exists() for t in trials for m in t.measurements)
        report = collect_garbage(client, "gc")
        again = collect_garbage(client, "gc")
    finals = {t.final_measurement.checkpoint_path for t in trials if t.final_measurement}
    everything = {m.checkpoint_path for t in trials for m in t.measurements}
    assert all(t.status is TrialStatus.COMPLETED for t in trials) and len(finals) == 6
    assert set(report.deleted) == everything - finals and len(report.deleted) == 6
    assert all(Path(p).exists() for p in finals)
    assert not any(Path(p).exists() for p in report.deleted)
    assert again.deleted == () and again.missing == 6  # a second pass finds them gone
