"""Workers (trainer + evaluator) against a real server: full studies, reproducibility, failures."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import cast

from pbt_service.core.types import TrialStatus
from pbt_service.local import LocalService
from tests.service.conftest import simple_config
from worker_client import PbtClient, TrialContext, Worker, run_workers
from worker_client.context import step_of_checkpoint


def train(ctx: TrialContext) -> None:
    """Deterministic stand-in trainer: the 'model' is a number nudged by the hparams."""
    step = step_of_checkpoint(ctx.warm_start_checkpoint_path)
    value = 0.0
    if ctx.warm_start_checkpoint_path:
        value = json.loads(Path(ctx.warm_start_checkpoint_path).read_text())["value"]
    for _ in range(2):
        step += 5
        value += float(ctx.hparams["h"]) - 0.5 * float(ctx.hparams["h"]) ** 2
        target = ctx.checkpoint_path(step)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps({"value": value}))
        os.replace(tmp, target)


def evaluate(ctx: TrialContext, checkpoint: Path) -> dict[str, float]:
    return {"score": json.loads(checkpoint.read_text())["value"]}


def _run_study(tmp_path: Path, name: str) -> list[tuple[object, ...]]:
    tmp_path.mkdir()
    with LocalService(f"sqlite:///{tmp_path / name}.db") as service, PbtClient(service.address) as client:
        client.create_study(name, simple_config(population=3, max_generations=4, seed=7))
        ran = Worker(client, name, train, evaluate, worker_id="w", workdir=tmp_path / name).run()
        trials = client.list_trials(name)
    assert ran == 12
    return [
        (
            t.number,
            t.generation,
            dict(t.hparams),
            t.parent_trial_id,
            t.initiator_parent_trial_id,
            [(m.step, dict(m.metrics)) for m in t.measurements],
            t.status,
        )
        for t in trials
    ]


def test_one_worker_with_a_fixed_seed_reproduces_the_study(tmp_path: Path) -> None:
    first = _run_study(tmp_path / "a", "repro")
    second = _run_study(tmp_path / "b", "repro")
    assert first == second
    assert all(row[6] is TrialStatus.COMPLETED for row in first)
    assert [len(cast(list[object], row[5])) for row in first] == [2] * 12  # each checkpoint evaluated and reported once


def test_many_workers_finish_the_study_and_lineage_resumes_steps(tmp_path: Path) -> None:
    with LocalService(f"sqlite:///{tmp_path / 'many.db'}") as service, PbtClient(service.address) as client:
        client.create_study("many", simple_config(population=4, max_generations=3, seed=1))
        ran = run_workers(service.address, "many", train, evaluate, num_workers=3, workdir=tmp_path)
        trials = {t.id: t for t in client.list_trials("many")}
        assert client.get_study("many").state.value == "done"
    assert ran == 12 and len(trials) == 12
    for trial in trials.values():
        if trial.parent_trial_id:
            parent = trials[trial.parent_trial_id]
            assert parent.final_measurement is not None
            assert trial.measurements[0].step == parent.final_measurement.step + 5
            assert trial.warm_start_checkpoint_path == parent.final_measurement.checkpoint_path


def test_crashing_trainer_and_missing_checkpoints_fail_the_trial_not_the_worker(tmp_path: Path) -> None:
    calls = {"n": 0}

    def flaky(ctx: TrialContext) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom: CUDA out of memory")
        if calls["n"] == 2:
            return  # writes nothing
        train(ctx)

    with LocalService(f"sqlite:///{tmp_path / 'f.db'}") as service, PbtClient(service.address) as client:
        client.create_study("flaky", simple_config(population=2, max_generations=1))
        Worker(client, "flaky", flaky, evaluate, worker_id="w", workdir=tmp_path).run()
        trials = client.list_trials("flaky")
    failed = [t for t in trials if t.status is TrialStatus.FAILED]
    assert len(failed) == 2
    assert "boom: CUDA out of memory" in failed[0].status_message
    assert "wrote no checkpoint" in failed[1].status_message
    assert sum(t.status is TrialStatus.COMPLETED for t in trials) == 2


def test_evaluator_returning_garbage_fails_the_trial(tmp_path: Path) -> None:
    def bad_eval(ctx: TrialContext, checkpoint: Path) -> dict[str, float]:
        return {"score": "high"}  # type: ignore[dict-item]

    with LocalService(f"sqlite:///{tmp_path / 'g.db'}") as service, PbtClient(service.address) as client:
        client.create_study("garbage", simple_config(population=2, max_trials=1))
        Worker(client, "garbage", train, bad_eval, worker_id="w", workdir=tmp_path).run(max_trials=1)
        trial = client.list_trials("garbage")[0]
    assert trial.status is TrialStatus.FAILED
    assert "non-number" in trial.status_message and "score" in trial.status_message
