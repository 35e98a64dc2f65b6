"""Best trials, schedules, replay plans and their replay: the schedule of the best trial replays to
the same model; `pbt-results plan/schedule/replay` save, check and run plans, and name what is
missing or malformed without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import grpc
import pytest
from hypothesis import given, settings

from pbt_service.core.lineage import PlanSegment, ReplayPlan, replay_plan
from pbt_service.core.types import Trial, TrialStatus
from pbt_service.local import LocalService
from tests.core.test_lineage import forests
from tests.service.conftest import simple_config
from tests.worker_client.conftest import subprocess_env
from tests.worker_client.test_worker_end_to_end import evaluate, train
from worker_client import PbtClient, TrialContext, Worker
from worker_client.replay import PLAN_FILE, ReplayError, load_plan, plan_from_json, plan_to_json, replay, save_plan
from worker_client.results import best, trial_schedule
from worker_client.results_cli import main as results_main

TRAINER = "tests.worker_client.test_worker_end_to_end:train"
EVALUATOR = "tests.worker_client.test_worker_end_to_end:evaluate"


class Study:
    """A finished study (population 3, 4 generations) and its trials, shared by the module."""

    def __init__(self, address: str, trials: list[Trial]) -> None:
        self.address = address
        self.trials = {t.id: t for t in trials}
        self.last_generation = sorted(t.id for t in trials if t.generation == 3)

    def plan(self, *finals: int) -> ReplayPlan:
        return replay_plan(finals, self.trials.__getitem__)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Study]:
    folder = tmp_path_factory.mktemp("results")
    with LocalService(f"sqlite:///{folder / 'r.db'}") as service, PbtClient(service.address) as client:
        client.create_study("res", simple_config(population=3, max_generations=4, seed=3))
        Worker(client, "res", train, evaluate, worker_id="w", workdir=folder / "runs").run()
        yield Study(service.address, client.list_trials("res"))


def cli(study: Study, *argv: str) -> int:
    return results_main(["--service", study.address, *argv])


def test_schedule_of_the_best_trial_replays_to_the_same_model(
    study: Study, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with PbtClient(study.address) as client:
        ranking = best(client, client.get_study("res"), top=12)
        winner = ranking[0]
        segments = trial_schedule(client, winner)
    assert cli(study, "schedule", str(winner.id), "--save", str(tmp_path / "s.json")) == 0
    assert cli(study, "best", "res", "--top", "2") == 0
    scores = [t.final_measurement.metrics["score"] for t in ranking if t.final_measurement]
    assert scores == sorted(scores, reverse=True) and len(scores) == 12
    assert [s.trial_id for s in segments][-1] == winner.id
    assert [s.generation for s in segments] == list(range(winner.generation + 1))
    assert all(a.end_step == b.start_step for a, b in zip(segments, segments[1:], strict=False))
    plan = load_plan(tmp_path / "s.json")
    assert plan == study.plan(winner.id) and list(plan.segments) == segments
    best_table = capsys.readouterr().out.split("saved to")[-1].splitlines()
    assert best_table[1].split()[0] == "trial_id" and best_table[2].split()[0] == str(winner.id)
    results = replay(plan, train, evaluate, tmp_path / "replay")
    assert [r.trial_id for r in results] == [s.trial_id for s in segments]
    assert results[-1].step == winner.final_measurement.step  # type: ignore[union-attr]
    assert results[-1].metrics["score"] == pytest.approx(winner.final_measurement.metrics["score"])  # type: ignore[union-attr]
    assert all((tmp_path / "replay" / f"trial-{s.trial_id}").is_dir() for s in segments)


def test_plan_prints_and_saves_the_union_of_the_lineages(
    study: Study, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    finals = study.last_generation
    assert cli(study, "plan", *map(str, finals), "--save", str(tmp_path / "p.json")) == 0
    out = capsys.readouterr().out
    plan = study.plan(*finals)
    assert load_plan(tmp_path / "p.json") == plan
    assert json.loads((tmp_path / "p.json").read_text())["format"] == 1
    header, *rows = out.splitlines()[: len(plan.segments) + 1]
    assert header.split()[:5] == ["order", "trial", "gen", "steps", "from"] and header.split()[5:] == ["h", "lr"]
    for order, (row, segment) in enumerate(zip(rows, plan.segments, strict=True), start=1):
        parent = "-" if segment.warm_start_trial_id is None else str(segment.warm_start_trial_id)
        expected = [str(order), str(segment.trial_id), str(segment.generation),
                    f"{segment.start_step}-{segment.end_step}", parent]
        assert row.split()[:5] == expected
    assert f"{len(plan.segments)} segments to train" in out


@pytest.mark.parametrize("command", ["plan", "schedule"])
def test_an_unknown_trial_is_named_and_exits_2(
    study: Study, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(study, command, "99999") == 2
    err = capsys.readouterr().err
    assert "trial 99999 not found" in err and "Traceback" not in err


class NotFound(grpc.RpcError):  # type: ignore[misc]  # grpc has no type hints
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.NOT_FOUND

    def details(self) -> str:
        return "no such trial"


def test_a_missing_ancestor_is_named_with_its_final(
    study: Study, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    final = study.last_generation[0]
    root = study.plan(final).segments[0].trial_id
    real = PbtClient.get_trial

    def get_trial(client: PbtClient, trial_id: int) -> Trial:
        if trial_id == root:
            raise NotFound()
        return real(client, trial_id)

    monkeypatch.setattr(PbtClient, "get_trial", get_trial)
    assert cli(study, "plan", str(final)) == 1
    err = capsys.readouterr().err
    assert f"trial {root}, an ancestor of trial {final}, not found" in err and "Traceback" not in err


def test_dry_run_trains_nothing(study: Study, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_plan(study.plan(*study.last_generation), tmp_path / "p.json")
    workdir = tmp_path / "replay"
    argv = ["replay", str(tmp_path / "p.json"), "--trainer", TRAINER, "--evaluator", EVALUATOR,
            "--workdir", str(workdir), "--dry-run"]
    assert results_main(argv) == 0
    out = capsys.readouterr().out
    assert not workdir.exists()
    assert "dry run: would train" in out and "order" in out and "step " not in out


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not JSON"),
        ('{"finals": [1], "segments": []}', '"format" is None; this version reads 1'),
        ('{"format": 2, "finals": [1], "segments": []}', '"format" is 2'),
        ('{"format": 1, "segments": []}', "missing finals"),
        ('{"format": 1, "finals": [], "segments": []}', "no final trials"),
        ('{"format": 1, "finals": [1], "segments": []}', r"final trials \[1\] have no segment"),
        ('{"format": 1, "finals": [2], "segments": [{"trial_id": 2, "generation": 1, "start_step": 4, "end_step": 8, '
         '"hparams": {}, "warm_start_trial_id": 1}]}', "warm-starts from trial 1, which is not an earlier segment"),
        ('{"format": 1, "finals": [1], "segments": [{"trial_id": 1, "generation": 0, "start_step": 0, "end_step": -3, '
         '"hparams": {}, "warm_start_trial_id": null}]}', "must be non-negative and end >= start"),
        ('{"format": 1, "finals": [1], "segments": [{"trial_id": "1", "generation": 0, "start_step": 0, '
         '"end_step": 3, "hparams": {}, "warm_start_trial_id": null}]}', "trial_id must be an integer"),
        ('[{"trial": 1}]', "segment 0: missing trial_id"),
        ("[]", "the schedule has no segments"),
        ('"plan"', 'expected an object with "format": 1'),
    ],
)
def test_a_malformed_plan_is_named_and_exits_2(
    tmp_path: Path, content: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=problem):
        load_plan(path)
    argv = ["replay", str(path), "--trainer", TRAINER, "--evaluator", EVALUATOR, "--workdir", str(tmp_path / "w")]
    assert results_main(argv) == 2
    err = capsys.readouterr().err
    assert f"{path}: not a replay plan" in err and "Traceback" not in err
    assert not (tmp_path / "w").exists()


def test_a_missing_plan_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["replay", str(tmp_path / "none.json"), "--trainer", TRAINER, "--evaluator", EVALUATOR]
    assert results_main(argv) == 2
    assert "none.json: cannot read the plan" in capsys.readouterr().err


def test_an_old_schedule_file_still_replays(study: Study, tmp_path: Path) -> None:
    final = study.last_generation[-1]
    plan = study.plan(final)
    old = [{k: v for k, v in asdict(s).items() if k != "warm_start_trial_id"} for s in plan.segments]
    (tmp_path / "old.json").write_text(json.dumps(old, indent=2))
    assert load_plan(tmp_path / "old.json") == plan
    results = replay(load_plan(tmp_path / "old.json"), train, evaluate, tmp_path / "replay")
    assert results[-1].metrics["score"] == pytest.approx(study.trials[final].final_measurement.metrics["score"])  # type: ignore[union-attr]


@settings(max_examples=100, deadline=None)
@given(forests())
def test_a_plan_survives_json(forest: tuple[dict[int, Trial], dict[int, int], list[int]]) -> None:
    trials, _, finals = forest
    plan = replay_plan(finals, trials.__getitem__)
    assert plan_from_json(json.loads(json.dumps(plan_to_json(plan)))) == plan


def one_step_plan() -> ReplayPlan:
    """Trial 1 (root, steps 0-10) and trial 2 warm-starting from it (10-20)."""
    return ReplayPlan((2,), (PlanSegment(1, 0, 0, 10, {"h": 0.5}, None), PlanSegment(2, 1, 10, 20, {"h": 0.7}, 1)))


def test_a_used_workdir_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    replay(one_step_plan(), train, evaluate, tmp_path / "w")
    before = sorted(p.name for p in (tmp_path / "w").iterdir())
    assert before == [PLAN_FILE, "trial-1", "trial-2"]
    with pytest.raises(FileExistsError, match="already holds a replay"):
        replay(one_step_plan(), train, evaluate, tmp_path / "w")
    save_plan(one_step_plan(), tmp_path / "p.json")
    argv = ["replay", str(tmp_path / "p.json"), "--trainer", TRAINER, "--evaluator", EVALUATOR,
            "--workdir", str(tmp_path / "w")]
    assert results_main(argv) == 2
    assert "already holds a replay" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == before


def test_a_segment_without_a_checkpoint_is_named(tmp_path: Path) -> None:
    def lazy(ctx: TrialContext) -> None:
        if ctx.trial_id == 1:
            train(ctx)

    with pytest.raises(ReplayError, match=r"segment of trial 2 \(generation 1, steps 10-20\)"):
        replay(one_step_plan(), lazy, evaluate, tmp_path / "w")


def test_a_child_warm_starts_from_the_parents_end_step_else_its_last_checkpoint(tmp_path: Path) -> None:
    seen: dict[int, str | None] = {}

    def recording(ctx: TrialContext) -> None:
        seen[ctx.trial_id] = ctx.warm_start_checkpoint_path
        train(ctx)  # writes ckpt-5 and ckpt-10 (root), ckpt-15 and ckpt-20 (child)

    replay(one_step_plan(), recording, evaluate, tmp_path / "a")
    assert seen[2] == str(tmp_path / "a" / "trial-1" / "ckpt-000000010")
    early = ReplayPlan((2,), (PlanSegment(1, 0, 0, 5, {"h": 0.5}, None), PlanSegment(2, 1, 5, 20, {"h": 0.7}, 1)))
    results = replay(early, recording, evaluate, tmp_path / "b")
    assert seen[2] == str(tmp_path / "b" / "trial-1" / "ckpt-000000005")
    late = ReplayPlan((2,), (PlanSegment(1, 0, 0, 30, {"h": 0.5}, None), PlanSegment(2, 1, 30, 40, {"h": 0.7}, 1)))
    results = replay(late, recording, evaluate, tmp_path / "c")
    assert seen[2] == str(tmp_path / "c" / "trial-1" / "ckpt-000000010")
    assert [r.step for r in results] == [10, 20]


TRAINER_MODULE = '''
import json, os
from pathlib import Path

def train(ctx):
    value = json.loads(Path(ctx.warm_start_checkpoint_path).read_text()) if ctx.warm_start_checkpoint_path else 0
    ctx.checkpoint_path(ctx.steps).write_text(json.dumps(value + ctx.hparams["h"] * ctx.steps))

def evaluate(ctx, checkpoint):
    return {"value": json.loads(Path(checkpoint).read_text())}
'''


def test_pbt_results_replay_finds_a_trainer_module_in_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "my_trainer.py").write_text(TRAINER_MODULE)
    save_plan(ReplayPlan((1,), (PlanSegment(1, 0, 0, 10, {"h": 0.5}, None),)), tmp_path / "p.json")
    command = [str(Path(sys.executable).parent / "pbt-results"), "replay", "p.json",
               "--trainer", "my_trainer:train", "--evaluator", "my_trainer:evaluate", "--workdir", "out"]
    done = subprocess.run(command, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert 'trial 1 (final): step 10: {"value": 5.0}' in done.stdout
    assert (tmp_path / "out" / "trial-1" / "ckpt-000000010").exists()
    broken = subprocess.run([*command[:2], "my_trainer.py", *command[3:]], cwd=tmp_path, env=subprocess_env(),
                            capture_output=True, text=True, timeout=120)
    assert broken.returncode == 2 and "not a replay plan" in broken.stderr and "Traceback" not in broken.stderr


def test_completed_trials_of_the_study_are_all_in_some_plan(study: Study) -> None:
    completed = [t.id for t in study.trials.values() if t.status == TrialStatus.COMPLETED]
    plan = study.plan(*completed)
    assert {s.trial_id for s in plan.segments} == set(completed)
