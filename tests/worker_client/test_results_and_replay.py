"""Best trials, lineage/schedule and replay of a schedule reproduce the best model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pbt_service.local import LocalService
from tests.service.conftest import simple_config
from tests.worker_client.test_worker_end_to_end import evaluate, train
from worker_client import PbtClient, Worker
from worker_client.replay import load_schedule, replay
from worker_client.results import best, trial_schedule
from worker_client.results_cli import main as results_main


def test_schedule_of_the_best_trial_replays_to_the_same_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with LocalService(f"sqlite:///{tmp_path / 'r.db'}") as service, PbtClient(service.address) as client:
        client.create_study("res", simple_config(population=3, max_generations=4, seed=3))
        Worker(client, "res", train, evaluate, worker_id="w", workdir=tmp_path / "runs").run()
        study = client.get_study("res")
        ranking = best(client, study, top=12)
        winner = ranking[0]
        segments = trial_schedule(client, winner)
        assert results_main(["--service", service.address, "schedule", str(winner.id),
                             "--save", str(tmp_path / "s.json")]) == 0
        assert results_main(["--service", service.address, "best", "res", "--top", "2"]) == 0
    scores = [t.final_measurement.metrics["score"] for t in ranking if t.final_measurement]
    assert scores == sorted(scores, reverse=True) and len(scores) == 12
    assert [s.trial_id for s in segments][-1] == winner.id
    assert [s.generation for s in segments] == list(range(winner.generation + 1))
    assert all(a.end_step == b.start_step for a, b in zip(segments, segments[1:], strict=False))
    assert load_schedule(tmp_path / "s.json") == segments
    out = capsys.readouterr().out
    assert f"trial {winner.id}" in out
    results = replay(segments, train, evaluate, tmp_path / "replay")
    assert results[-1][0] == winner.final_measurement.step  # type: ignore[union-attr]
    assert results[-1][1]["score"] == pytest.approx(winner.final_measurement.metrics["score"])  # type: ignore[union-attr]


def test_replay_rejects_a_malformed_schedule(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"trial": 1}]))
    with pytest.raises(ValueError, match="not a schedule file"):
        load_schedule(path)
