"""Workers as Ray actors (`worker_client.ray_launcher`, `pbt-ray-workers`) against a real service on
a loopback port over SQLite, on one local Ray shared by the module (2 CPUs, no dashboard): a study
runs to completion under the launcher's stable worker ids, and a worker actor killed mid-trial (as
when its node dies) is restarted by Ray under the same id and gets its trial back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.toy import problem
from pbt_service.local import LocalService
from worker_client import PbtClient, TrialContext, TrialStatus
from worker_client.ray_cli import main
from worker_client.ray_launcher import RayLauncher, run_on_ray, worker_id_of
from worker_client.settings import ClientSettings

ROOT = Path(__file__).resolve().parents[2]
STARTS = "starts.jsonl"
STEP_SECONDS = 0.15


def slow_train(ctx: TrialContext) -> None:
    """The toy trainer, 0.15 s a step, noting each start (trial, worker id, pid) beside
    the study's model directories so that a test sees a trial trained again after a restart."""
    with open(ctx.model_dir.parent / STARTS, "a", encoding="utf-8") as notes:
        notes.write(json.dumps({"trial": ctx.trial_id, "worker": ctx.worker_id, "pid": os.getpid()}) + "\n")
    for _ in range(ctx.steps or problem.DEFAULT_STEPS):
        if ctx.should_stop():
            break
        time.sleep(STEP_SECONDS)
    problem.train(ctx)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """A new local Ray for the module (never one of another session); its workers import the
    repository's packages, as the launcher's users import theirs."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LocalService]:
    with LocalService(f"sqlite:///{tmp_path / 'pbt.db'}", lease_seconds=60, retry_after_seconds=0.05) as running:
        yield running


def create_toy(service: LocalService, study: str, population: int = 4, generations: int = 2) -> None:
    with PbtClient(service.address) as client:
        client.create_study(study, problem.study_config(population_size=population, max_generations=generations))


def trials_of(service: LocalService, study: str) -> list[Any]:
    with PbtClient(service.address) as client:
        return client.list_trials(study, with_measurements=False)


def test_two_workers_run_a_study_to_completion_under_stable_ids(
        local_ray: Any, service: LocalService, tmp_path: Path) -> None:
    create_toy(service, "toy", population=4, generations=3)
    result = run_on_ray(service.address, "toy", "examples.toy.problem:train", problem.evaluate, 2,
                        workdir=tmp_path / "runs", worker_prefix="toy-ray")
    trials = trials_of(service, "toy")
    assert len(trials) >= 12 and all(t.status is TrialStatus.COMPLETED for t in trials)
    assert [w.worker_id for w in result.workers] == ["toy-ray-w0", "toy-ray-w1"]
    assert {t.worker_id for t in trials} <= {"toy-ray-w0", "toy-ray-w1"}
    for worker in result.workers:  # each trial the service saw was run and counted by its worker
        assert worker.trials == sum(t.worker_id == worker.worker_id for t in trials)
        assert worker.restarts == 0 and worker.errors == () and len(worker.nodes) == 1
    assert result.trials == len(trials) and result.counts == {TrialStatus.COMPLETED: len(trials)}
    assert result.errors == () and "0 restart(s)" in result.summary()
    with PbtClient(service.address) as client:
        assert client.get_study("toy").state.value == "done"


def test_a_killed_worker_is_restarted_with_its_id_and_gets_its_trial_back(
        local_ray: Any, service: LocalService, tmp_path: Path) -> None:
    create_toy(service, "restart", population=2, generations=2)
    workdir = tmp_path / "runs"
    settings = ClientSettings(service.address, retry_seconds=10)
    with RayLauncher(settings, "restart", "tests.worker_client.test_ray_launcher:slow_train",
                     "examples.toy.problem:evaluate", 2, workdir=workdir, worker_prefix="node",
                     max_restarts=-1) as launcher:
        launcher.check_study()
        launcher.start()
        killed = worker_id_of("node", 0)
        held, pid = held_trial(workdir / "restart" / STARTS, killed)
        local_ray.kill(launcher.actors[0], no_restart=False)  # its process dies, as on a lost node
        result = launcher.wait(timeout=60)
    assert result is not None, "the study did not finish within 60 s"
    assert result.workers[0].worker_id == killed and result.workers[0].restarts == 1
    assert result.restarts == 1 and result.errors == ()
    trials = {t.id: t for t in trials_of(service, "restart")}
    assert all(t.status is TrialStatus.COMPLETED for t in trials.values())
    assert {t.worker_id for t in trials.values()} <= {"node-w0", "node-w1"}
    assert trials[held].worker_id == killed  # the restarted worker got the trial back and finished it
    starts = [json.loads(line) for line in (workdir / "restart" / STARTS).read_text().splitlines()]
    again = [s for s in starts if s["trial"] == held]
    assert [s["worker"] for s in again] == [killed, killed]
    assert again[0]["pid"] == pid != again[1]["pid"]  # trained again by the new process


def test_a_worker_out_of_restarts_is_an_error_and_the_others_finish_the_study(
        local_ray: Any, tmp_path: Path) -> None:
    with LocalService(f"sqlite:///{tmp_path / 'pbt.db'}", lease_seconds=3, retry_after_seconds=0.05) as service:
        create_toy(service, "fragile", population=2, generations=2)
        workdir = tmp_path / "runs"
        with RayLauncher(ClientSettings(service.address, retry_seconds=10), "fragile",
                         "tests.worker_client.test_ray_launcher:slow_train", "examples.toy.problem:evaluate", 2,
                         workdir=workdir, worker_prefix="fragile", max_restarts=0,
                         heartbeat_seconds=0.3) as launcher:
            launcher.start()
            held, _ = held_trial(workdir / "fragile" / STARTS, "fragile-w0")
            local_ray.kill(launcher.actors[0], no_restart=False)
            result = launcher.wait(timeout=60)
        assert result is not None, "the study did not finish within 60 s"
        trials = {t.id: t for t in trials_of(service, "fragile")}
        with PbtClient(service.address) as client:
            assert client.get_study("fragile").state.value == "done"  # w1 finished it alone
    assert result.workers[0].restarts == 0 and "out of restarts" in result.workers[0].errors[0]
    assert result.errors[0].startswith("[w0] ") and result.workers[1].errors == ()
    assert trials[held].status is TrialStatus.STOPPED  # its lease expired; another trial took its place
    assert trials[held].worker_id == "fragile-w0" and result.workers[1].trials >= 3
    assert not any(t.status is TrialStatus.ACTIVE for t in trials.values())


def test_the_resources_asked_for_become_the_actors_options(tmp_path: Path) -> None:
    launcher = RayLauncher(ClientSettings("localhost:1"), "s", "a:b", "a:b", 3, workdir=tmp_path, num_cpus=2,
                           num_gpus=0.5, memory=2**30, resources={"TPU": 1}, max_restarts=4,
                           runtime_env={"working_dir": "."}, worker_prefix="p")
    assert launcher.actor_options == {
        "num_cpus": 2, "num_gpus": 0.5, "memory": 2**30, "resources": {"TPU": 1}, "max_restarts": 4,
        "max_concurrency": 2, "runtime_env": {"working_dir": "."},
    }
    assert launcher.worker_ids == ["p-w0", "p-w1", "p-w2"]
    with pytest.raises(ValueError, match="max_restarts"):
        RayLauncher(ClientSettings("localhost:1"), "s", "a:b", "a:b", 1, workdir=tmp_path, max_restarts=-2)


def held_trial(starts: Path, worker_id: str, timeout: float = 30.0) -> tuple[int, int]:
    """The trial `worker_id` is training now and the pid training it, once its trainer started."""
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        lines = starts.read_text().splitlines() if starts.exists() else []
        mine = [json.loads(line) for line in lines if json.loads(line)["worker"] == worker_id]
        if mine:
            return int(mine[0]["trial"]), int(mine[0]["pid"])
        time.sleep(0.05)
    raise AssertionError(f"{worker_id} started no trial within {timeout:g} s")


def test_the_command_runs_a_study_and_exits_0(
        local_ray: Any, service: LocalService, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    create_toy(service, "cli", population=2, generations=2)
    code = main(["--service", service.address, "--study", "cli", "--num-workers", "2", "--cpus-per-worker", "1",
                 "--worker-prefix", "cli", "--workdir", str(tmp_path / "runs"), "--quiet",
                 "--trainer-module", "examples.toy.problem:train",
                 "--evaluator-module", "examples.toy.problem:evaluate"])
    assert code == 0, capsys.readouterr().err
    trials = trials_of(service, "cli")
    assert trials and all(t.status is TrialStatus.COMPLETED for t in trials)
    assert {t.worker_id for t in trials} <= {"cli-w0", "cli-w1"}


def test_a_trainer_that_does_not_import_exits_2_naming_the_flag(
        local_ray: Any, service: LocalService, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    create_toy(service, "missing", population=2, generations=1)
    code = main(["--service", service.address, "--study", "missing", "--workdir", str(tmp_path / "runs"),
                 "--trainer-module", "examples.toy.problem:no_such_function",
                 "--evaluator-module", "examples.toy.problem:evaluate", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--trainer-module 'examples.toy.problem:no_such_function'" in err and "Traceback" not in err


def test_an_unknown_study_exits_2_before_starting_workers(
        service: LocalService, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--service", service.address, "--study", "nope", "--workdir", str(tmp_path),
                 "--trainer-module", "a:b", "--evaluator-module", "a:b"])
    err = capsys.readouterr().err
    assert code == 2 and "study 'nope' does not exist" in err and "Traceback" not in err


def test_help_names_the_ray_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    shown = capsys.readouterr().out
    for flag in ("--ray-address", "--num-workers", "--cpus-per-worker", "--gpus-per-worker", "--resources",
                 "--max-restarts", "--memory-per-worker", "--worker-prefix", "--service", "--token",
                 "--trainer-module", "--evaluator-module", "--create-study", "--workdir"):
        assert flag in shown


GOOD = ["--service", "localhost:1", "--study", "s", "--trainer-module", "a:b", "--evaluator-module", "a:b"]


@pytest.mark.parametrize(("argv", "flag"), [
    (["--num-workers", "0"], "--num-workers"),
    (["--num-workers", "two"], "--num-workers"),
    (["--cpus-per-worker", "-1"], "--cpus-per-worker"),
    (["--gpus-per-worker", "x"], "--gpus-per-worker"),
    (["--resources", "{bad"], "--resources"),
    (["--resources", '{"TPU": -1}'], "--resources"),
    (["--max-restarts", "-2"], "--max-restarts"),
    (["--memory-per-worker", "lots"], "--memory-per-worker"),
    (["--runtime-env", "[]"], "--runtime-env"),
    (["--worker-prefix", "bad/prefix"], "--worker-prefix"),
    (["--trainer-module", "nocolon"], "--trainer-module"),
    (["--deadline-seconds", "0"], "--deadline-seconds"),
    (["--create-study", "/nonexistent/study.json"], "--create-study"),
    (["--max-time", "0"], "--max-time"),
])
def test_a_bad_flag_exits_2_with_one_line_naming_it(
        argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main([*GOOD, *argv])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2
    assert len(err.splitlines()) == 1 and flag in err and err.startswith("pbt-ray-workers: error:"), err


def test_a_missing_study_flag_exits_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PBT_STUDY", raising=False)
    with pytest.raises(SystemExit) as stop:
        main(["--service", "localhost:1", "--trainer-module", "a:b", "--evaluator-module", "a:b"])
    assert stop.value.code == 2 and "--study" in capsys.readouterr().err


def test_without_ray_the_command_says_what_to_install(tmp_path: Path) -> None:
    blocked = "import sys; sys.modules['ray'] = None; from worker_client.ray_cli import main; sys.exit(main())"
    result = subprocess.run(
        [sys.executable, "-c", blocked, *GOOD], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'pbt-service[ray]'" in result.stderr and "Traceback" not in result.stderr
