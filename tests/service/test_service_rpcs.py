"""The service over real gRPC on loopback: the paper's protocol, retries and bad input."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import grpc
import pytest

from pbt_service import converters
from pbt_service.api.v1 import pbt_service_pb2 as pb
from pbt_service.api.v1 import study_pb2
from pbt_service.core.types import Measurement, StudyState, TrialStatus
from tests.fake_clock import FakeClock
from tests.service.conftest import simple_config
from worker_client import PbtClient, SelectionConfig


def _code(call: object) -> grpc.StatusCode:
    assert isinstance(call, grpc.RpcError)
    return call.code()


def finish(client: PbtClient, trial_id: int, worker: str, score: float, step: int = 10) -> None:
    client.report_measurement(
        trial_id,
        worker,
        Measurement(step=step, metrics={"score": score}, checkpoint_path=f"/ckpt/{trial_id}/{step}"),
    )
    client.complete_trial(trial_id, worker)


def test_create_get_list_and_duplicate(client: PbtClient) -> None:
    study = client.create_study("s1", simple_config())
    assert study.name == "s1" and study.state is StudyState.ACTIVE
    assert client.get_study("s1").config == study.config
    with pytest.raises(grpc.RpcError) as error:
        client.create_study("s1", simple_config())
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert [s.name for s in client.list_studies()] == ["s1"]


def test_unknown_study_and_trial_are_not_found(client: PbtClient) -> None:
    for call in (
        lambda: client.get_study("nope"),
        lambda: client.get_new_suggestion("nope", "w"),
        lambda: client.get_trial(12345),
        lambda: client.list_trials("nope"),
    ):
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert error.value.code() == grpc.StatusCode.NOT_FOUND


BAD_CONFIGS: dict[str, tuple[Callable[[study_pb2.StudyConfig], object], str]] = {
    "empty search space": (lambda c: c.ClearField("parameters"), "config.parameters"),
    "low >= high": (lambda c: setattr(c.parameters[1].float_range, "low", 2.0), "config.parameters[1]"),
    "log with low <= 0": (lambda c: setattr(c.parameters[0].float_range, "low", 0.0), "config.parameters[0]"),
    "duplicate names": (lambda c: setattr(c.parameters[1], "name", "lr"), "config.parameters"),
    "no objective": (lambda c: c.ClearField("objectives"), "config.objectives"),
    "population < 2": (
        lambda c: setattr(c.algorithm, "population_size", 1),
        "config.algorithm.population_size",
    ),
    "negative factor": (
        lambda c: c.algorithm.perturbation_factors.extend([0.8, -1.2]),
        "config.algorithm.perturbation_factors",
    ),
    "condition on a missing parameter": (
        lambda c: c.parameters[1].condition.CopyFrom(study_pb2.Condition(parent="opt", categories=["sgd"])),
        "config.parameters[1].condition",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_invalid_config_is_rejected_naming_the_field_and_writes_nothing(client: PbtClient, case: str) -> None:
    mutate, field = BAD_CONFIGS[case]
    config = converters.study_config_to_proto(simple_config())
    mutate(config)
    stub = client._stub
    with pytest.raises(grpc.RpcError) as error:
        stub.CreateStudy(pb.CreateStudyRequest(name="bad", config=config))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (error.value.details() or "")
    assert "Traceback" not in (error.value.details() or "")
    assert client.list_studies() == []


def test_condition_cycle_is_rejected(client: PbtClient) -> None:
    config = converters.study_config_to_proto(simple_config())
    opt_a = config.parameters.add(name="a", categorical=study_pb2.CategoricalValues(values=["x", "y"]))
    opt_b = config.parameters.add(name="b", categorical=study_pb2.CategoricalValues(values=["x", "y"]))
    opt_a.condition.CopyFrom(study_pb2.Condition(parent="b", categories=["x"]))
    opt_b.condition.CopyFrom(study_pb2.Condition(parent="a", categories=["x"]))
    with pytest.raises(grpc.RpcError) as error:
        client._stub.CreateStudy(pb.CreateStudyRequest(name="cyc", config=config))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cycle" in (error.value.details() or "").lower()


def test_bad_names_and_ids_are_invalid_argument(client: PbtClient) -> None:
    client.create_study("ok", simple_config())
    calls: list[Callable[[], object]] = [
        lambda: client._stub.CreateStudy(
            pb.CreateStudyRequest(name="bad name!", config=study_pb2.StudyConfig())
        ),
        lambda: client.get_new_suggestion("ok", ""),
        lambda: client.get_new_suggestion("ok", "w", count=-1),
        lambda: client.report_measurement(0, "w", Measurement(step=1, metrics={"score": 1.0})),
        lambda: client._stub.ListTrials(pb.ListTrialsRequest(study="ok", page_token="xyz")),
        lambda: client._stub.ListTrials(pb.ListTrialsRequest(study="ok", page_size=5000)),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()


def test_generation_zero_then_reproduction_with_lineage(client: PbtClient) -> None:
    client.create_study("evo", simple_config(population=2, selection=SelectionConfig(ready_generations=1)))
    first = client.get_new_suggestion("evo", "w1").trials[0]
    second = client.get_new_suggestion("evo", "w2").trials[0]
    assert (first.generation, second.generation) == (0, 0)
    assert first.parent_trial_id is None and first.warm_start_checkpoint_path == ""
    waiting = client.get_new_suggestion("evo", "w3")
    assert waiting.trials == () and waiting.retry_after_seconds > 0 and not waiting.study_done
    finish(client, first.id, "w1", 1.0)
    finish(client, second.id, "w2", 5.0)
    child = client.get_new_suggestion("evo", "w3").trials[0]
    assert child.generation == 1
    assert child.initiator_parent_trial_id == first.id  # the oldest completed trial initiates
    assert child.parent_trial_id == second.id  # and loses the binary tournament to the better one
    assert child.warm_start_checkpoint_path == f"/ckpt/{second.id}/10"
    ratios = {cast(float, child.hparams[k]) / cast(float, second.hparams[k]) for k in ("lr",)}
    assert all(
        math.isclose(r, 0.8) or math.isclose(r, 1.2) or child.hparams["lr"] in (1e-4, 1.0) for r in ratios
    )


def test_repeated_suggestion_returns_the_active_trial(client: PbtClient) -> None:
    client.create_study("idem", simple_config())
    a = client.get_new_suggestion("idem", "w1").trials
    b = client.get_new_suggestion("idem", "w1").trials
    assert [t.id for t in a] == [t.id for t in b]
    assert len(client.list_trials("idem")) == 1


def test_repeated_report_and_complete_change_nothing(client: PbtClient) -> None:
    client.create_study("idem2", simple_config())
    trial = client.get_new_suggestion("idem2", "w1").trials[0]
    m = Measurement(step=5, metrics={"score": 2.0}, checkpoint_path="/c/5")
    client.report_measurement(trial.id, "w1", m)
    client.report_measurement(trial.id, "w1", m)
    assert len(client.get_trial(trial.id).measurements) == 1
    done = client.complete_trial(trial.id, "w1")
    again = client.complete_trial(trial.id, "w1")
    assert done.status is TrialStatus.COMPLETED and again.end_time == done.end_time
    assert again.final_measurement is not None and again.final_measurement.step == 5


def test_reports_to_ended_or_foreign_trials_fail_precondition(client: PbtClient) -> None:
    client.create_study("pre", simple_config())
    trial = client.get_new_suggestion("pre", "w1").trials[0]
    m = Measurement(step=1, metrics={"score": 1.0})
    with pytest.raises(grpc.RpcError) as error:
        client.report_measurement(trial.id, "intruder", m)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as error:
        client.complete_trial(trial.id, "w1")  # no measurement yet
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finish(client, trial.id, "w1", 1.0)
    with pytest.raises(grpc.RpcError) as error:
        client.report_measurement(trial.id, "w1", Measurement(step=2, metrics={"score": 3.0}))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as error:
        client.complete_trial(trial.id, "w1", Measurement(step=99, metrics={"score": 9.0}))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert len(client.get_trial(trial.id).measurements) == 1


def test_missing_objective_metric_is_invalid_and_not_recorded(client: PbtClient) -> None:
    client.create_study("obj", simple_config())
    trial = client.get_new_suggestion("obj", "w1").trials[0]
    with pytest.raises(grpc.RpcError) as error:
        client.report_measurement(trial.id, "w1", Measurement(step=1, metrics={"loss": 1.0}))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "score" in (error.value.details() or "")
    assert client.get_trial(trial.id).measurements == ()


def test_nan_is_recorded_and_never_a_parent(client: PbtClient) -> None:
    client.create_study("nan", simple_config(population=2))
    a = client.get_new_suggestion("nan", "w1").trials[0]
    b = client.get_new_suggestion("nan", "w2").trials[0]
    finish(client, a.id, "w1", float("nan"))
    finish(client, b.id, "w2", 0.5)
    assert math.isnan(client.get_trial(a.id).final_measurement.metrics["score"])  # type: ignore[union-attr]
    child = client.get_new_suggestion("nan", "w1").trials[0]
    assert child.initiator_parent_trial_id == a.id
    assert child.parent_trial_id == b.id


def test_all_diverged_tournament_starts_from_scratch(client: PbtClient) -> None:
    client.create_study("nan2", simple_config(population=2))
    a = client.get_new_suggestion("nan2", "w1").trials[0]
    b = client.get_new_suggestion("nan2", "w2").trials[0]
    finish(client, a.id, "w1", float("inf") * -1)
    finish(client, b.id, "w2", float("nan"))
    child = client.get_new_suggestion("nan2", "w1").trials[0]
    assert child.generation == 1 and child.initiator_parent_trial_id == a.id
    assert child.parent_trial_id is None and child.warm_start_checkpoint_path == ""


def test_budget_spent_marks_the_study_done(client: PbtClient) -> None:
    client.create_study("done", simple_config(population=2, max_generations=2))
    for _ in range(4):
        trial = client.get_new_suggestion("done", "w").trials[0]
        finish(client, trial.id, "w", 1.0)
    reply = client.get_new_suggestion("done", "w")
    assert reply.study_done and reply.trials == ()
    assert client.get_study("done").state is StudyState.DONE
    assert sorted(t.generation for t in client.list_trials("done")) == [0, 0, 1, 1]


def test_budget_mode_one_worker_fills_each_generation_first(client: PbtClient) -> None:
    client.create_study("budget", simple_config(population=3, max_generations=3))
    generations = []
    while True:
        reply = client.get_new_suggestion("budget", "only-worker")
        if reply.study_done:
            break
        trial = reply.trials[0]
        generations.append(trial.generation)
        finish(client, trial.id, "only-worker", float(trial.number))
    assert generations == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    initiators = [t.initiator_parent_trial_id for t in client.list_trials("budget") if t.generation > 0]
    assert len(initiators) == len(set(initiators)) == 6  # every completed trial initiates exactly once


def test_lease_expiry_stops_the_trial_and_hands_its_reproduction_back(
    client: PbtClient, clock: FakeClock
) -> None:
    client.create_study("lease", simple_config(population=2))
    a = client.get_new_suggestion("lease", "w1").trials[0]
    b = client.get_new_suggestion("lease", "w2").trials[0]
    finish(client, a.id, "w1", 1.0)
    finish(client, b.id, "w2", 2.0)
    child = client.get_new_suggestion("lease", "w3").trials[0]
    clock.advance(61)
    replacement = client.get_new_suggestion("lease", "w4").trials[0]
    assert client.get_trial(child.id).status is TrialStatus.STOPPED
    assert replacement.initiator_parent_trial_id == child.initiator_parent_trial_id
    assert replacement.generation == 1
    with pytest.raises(grpc.RpcError) as error:
        client.report_measurement(child.id, "w3", Measurement(step=1, metrics={"score": 1.0}))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_heartbeat_keeps_the_lease(client: PbtClient, clock: FakeClock) -> None:
    client.create_study("hb", simple_config(population=2))
    trial = client.get_new_suggestion("hb", "w1").trials[0]
    for _ in range(3):
        clock.advance(40)
        assert client.heartbeat(trial.id, "w1") is False
        client.get_new_suggestion("hb", "w2")
    assert client.get_trial(trial.id).status is TrialStatus.ACTIVE


def test_median_rule_stops_a_bad_trial_through_report(client: PbtClient) -> None:
    config = simple_config(population=5)
    from dataclasses import replace

    from pbt_service.core.types import MedianStopping

    config = replace(config, algorithm=replace(config.algorithm, median_stopping=MedianStopping(True, 3, 1)))
    client.create_study("median", config)
    trials = [client.get_new_suggestion("median", f"w{i}").trials[0] for i in range(5)]
    for i, trial in enumerate(trials[:3]):
        finish(client, trial.id, f"w{i}", 10.0 + i)
    assert (
        client.report_measurement(trials[3].id, "w3", Measurement(step=10, metrics={"score": 50.0})) is False
    )
    assert client.report_measurement(trials[4].id, "w4", Measurement(step=10, metrics={"score": 1.0})) is True
    assert client.get_trial(trials[4].id).stop_requested
    assert [t.id for t in client.get_early_stopping_trials("median")] == [trials[4].id]


def test_stop_trial_hands_back_and_is_idempotent(client: PbtClient) -> None:
    client.create_study("stop", simple_config(population=2))
    trial = client.get_new_suggestion("stop", "w1").trials[0]
    stopped = client.stop_trial(trial.id, "preempted")
    assert stopped.status is TrialStatus.STOPPED and stopped.status_message == "preempted"
    assert client.stop_trial(trial.id).status is TrialStatus.STOPPED
    fresh = client.get_new_suggestion("stop", "w1").trials[0]
    assert fresh.generation == 0 and fresh.id != trial.id


def test_failed_trial_is_recorded_with_its_reason(client: PbtClient) -> None:
    client.create_study("fail", simple_config())
    trial = client.get_new_suggestion("fail", "w1").trials[0]
    failed = client.complete_trial(trial.id, "w1", failure_reason="exit code 3")
    assert failed.status is TrialStatus.FAILED and failed.status_message == "exit code 3"
    assert client.complete_trial(trial.id, "w1", failure_reason="exit code 3").status is TrialStatus.FAILED


def test_list_trials_pages_and_filters(client: PbtClient) -> None:
    client.create_study("pages", simple_config(population=5))
    ids = [client.get_new_suggestion("pages", f"w{i}").trials[0].id for i in range(5)]
    finish(client, ids[0], "w0", 1.0)
    reply = client._stub.ListTrials(pb.ListTrialsRequest(study="pages", page_size=2))
    assert [t.id for t in reply.trials] == ids[:2] and reply.next_page_token
    assert [t.id for t in client.list_trials("pages", page_size=2)] == ids
    assert [t.id for t in client.list_trials("pages", statuses=[TrialStatus.COMPLETED])] == ids[:1]
    assert len(client.list_trials("pages", generation=0)) == 5
    assert client.list_trials("pages", generation=1) == []
