"""The collector end to end: a real service on SQLite, real checkpoint files, real deletions.

Deletion is confined to the checkpoint roots; what the service decided is deleted once and
confirmed; a second run deletes nothing; a study without roots is collected only with --root.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pbt_service.core.types import CheckpointPolicy, CheckpointState, StudyConfig, TrialStatus
from pbt_service.local import LocalService
from tests.service.conftest import simple_config
from tests.worker_client.test_worker_end_to_end import evaluate, train
from worker_client import Measurement, PbtClient, Worker
from worker_client.garbage_collection import DELETED, GONE, REFUSED, NoRootsError, collect_garbage
from worker_client.results_cli import main as results_main


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LocalService]:
    with LocalService(f"sqlite:///{tmp_path / 'gc.db'}") as running:
        yield running


def with_roots(config: StudyConfig, *roots: Path, keep_best: int = 0) -> StudyConfig:
    return dataclasses.replace(config, checkpoints=CheckpointPolicy(tuple(str(r) for r in roots), keep_best))


def test_a_finished_study_keeps_only_its_best_finals(
    service: LocalService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    with PbtClient(service.address) as client:
        client.create_study("gc", with_roots(simple_config(population=2, max_generations=3), runs, keep_best=1))
        Worker(client, "gc", train, evaluate, worker_id="w", workdir=runs).run()
        trials = client.list_trials("gc")
        everything = {m.checkpoint_path for t in trials for m in t.measurements}
        assert all(Path(p).exists() for p in everything) and len(everything) == 12
        assert results_main(["--service", service.address, "gc", "gc", "--dry-run"]) == 0
        assert all(Path(p).exists() for p in everything)  # a dry run deletes and decides nothing
        assert client.collect_checkpoints("gc", dry_run=True).checkpoints
        report = collect_garbage(client, "gc")
        again = collect_garbage(client, "gc")
        after = client.list_trials("gc")
        capsys.readouterr()
        assert results_main(["--service", service.address, "best", "gc", "--top", "2", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [row["checkpoint_state"] for row in shown] == ["present", "deleted"]
    (best,) = [
        t for t in after if t.final_measurement and t.final_measurement.checkpoint_state is CheckpointState.PRESENT
    ]
    assert all(t.status is TrialStatus.COMPLETED for t in trials)
    assert best.final_measurement is not None
    assert best.final_measurement.metrics["score"] == max(
        t.final_measurement.metrics["score"] for t in trials if t.final_measurement
    )
    deleted = {r.path for r in report.rows if r.action == DELETED}
    assert deleted == everything - {best.final_measurement.checkpoint_path} and report.count(REFUSED) == 0
    assert report.bytes_freed > 0
    assert not any(Path(p).exists() for p in deleted) and Path(best.final_measurement.checkpoint_path).exists()
    assert again.rows == ()  # a second run right after deletes nothing
    states = {m.checkpoint_path: m.checkpoint_state for t in after for m in t.measurements}
    assert {p for p, s in states.items() if s is CheckpointState.DELETED} == deleted


def test_a_path_outside_the_roots_is_refused_at_report_time(service: LocalService, tmp_path: Path) -> None:
    runs, outside = tmp_path / "runs", tmp_path / "precious"
    outside.mkdir()
    (outside / "data.txt").write_text("keep me")
    with PbtClient(service.address) as client:
        client.create_study("roots", with_roots(simple_config(population=2), runs))
        (trial,) = client.get_new_suggestion("roots", "w").trials
        for bad in (str(outside), f"{runs}/../precious", "precious"):
            with pytest.raises(grpc.RpcError) as refused:
                client.report_measurement(trial.id, "w", Measurement(1, {"score": 1.0}, bad))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "measurement.checkpoint_path" in (refused.value.details() or "")
        assert client.get_trial(trial.id).measurements == ()
    assert (outside / "data.txt").read_text() == "keep me"


def test_a_study_without_roots_is_collected_only_with_an_explicit_root(
    service: LocalService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs, outside = tmp_path / "runs", tmp_path / "home" / "someone"
    outside.mkdir(parents=True)
    (outside / "thesis.tex").write_text("years of work")
    with PbtClient(service.address) as client:
        client.create_study("open", simple_config(population=2, max_trials=2))
        # A hostile or buggy worker reports a directory outside where checkpoints live.
        for worker in ("a", "b"):
            (trial,) = client.get_new_suggestion("open", worker).trials
            ckpt = runs / f"t{trial.id}"
            ckpt.mkdir(parents=True)
            client.report_measurement(trial.id, worker, Measurement(1, {"score": 1.0}, str(outside)))
            client.report_measurement(trial.id, worker, Measurement(2, {"score": 2.0}, str(ckpt)))
            client.complete_trial(trial.id, worker)
        assert client.get_new_suggestion("open", "a").study_done
        with pytest.raises(NoRootsError, match="--root"):
            collect_garbage(client, "open")
        assert results_main(["--service", service.address, "gc", "open"]) == 2
        assert "--root" in capsys.readouterr().err
        assert client.collect_checkpoints("open", dry_run=True).checkpoints  # nothing was decided
        assert results_main(["--service", service.address, "gc", "open", "--root", str(runs)]) == 0
        out = capsys.readouterr().out
        report = collect_garbage(client, "open", roots=[str(runs)])
    assert "refused" in out and str(outside) in out
    assert (outside / "thesis.tex").read_text() == "years of work"  # outside the root: survives
    assert [r.action for r in report.rows] == [REFUSED]  # refused again on every run
    assert len(list(runs.iterdir())) == 2  # the finals are among the best 3 the study keeps by default


def test_pause_and_resume_commands(service: LocalService, capsys: pytest.CaptureFixture[str]) -> None:
    with PbtClient(service.address) as client:
        client.create_study("p", simple_config(population=2, max_trials=1))
        assert results_main(["--service", service.address, "pause", "p"]) == 0
        assert client.get_new_suggestion("p", "w").study_paused
        assert results_main(["--service", service.address, "resume", "p"]) == 0
        (trial,) = client.get_new_suggestion("p", "w").trials
        client.report_measurement(trial.id, "w", Measurement(1, {"score": 1.0}))
        client.complete_trial(trial.id, "w")
        assert client.get_new_suggestion("p", "w").study_done
        assert results_main(["--service", service.address, "pause", "p"]) == 1
        assert results_main(["--service", service.address, "pause", "missing"]) == 2  # unknown study: exit 2
    captured = capsys.readouterr()
    assert "study p: paused" in captured.out and "study p: active" in captured.out
    assert "FAILED_PRECONDITION" in captured.err and "done" in captured.err and "NOT_FOUND" in captured.err


def test_a_collection_killed_half_way_is_finished_by_the_next(service: LocalService, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with PbtClient(service.address) as client:
        client.create_study("half", with_roots(simple_config(population=2, max_generations=2), runs))
        Worker(client, "half", train, evaluate, worker_id="w", workdir=runs).run()
        decided = client.collect_checkpoints("half")  # decided and recorded; then the collector died
        paths = sorted(c.path for c in decided.checkpoints)
        assert len(paths) >= 4 and all(Path(p).exists() for p in paths)
        for gone in paths[: len(paths) // 2]:  # it had deleted half of them, and confirmed none
            Path(gone).unlink()
        report = collect_garbage(client, "half")
        again = collect_garbage(client, "half")
    actions = {r.path: r.action for r in report.rows}
    assert actions == {p: GONE if i < len(paths) // 2 else DELETED for i, p in enumerate(paths)}
    assert not any(Path(p).exists() for p in paths) and again.rows == ()
