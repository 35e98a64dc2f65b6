"""PauseStudy, ResumeStudy, CollectCheckpoints and ConfirmCheckpointsDeleted over real gRPC, on
SQLite and PostgreSQL: status codes, bad input that changes nothing, the state on the wire."""

from __future__ import annotations

import dataclasses

import grpc
import pytest

from pbt_service.api.v1 import pbt_service_pb2 as pb
from pbt_service.api.v1 import pbt_service_pb2_grpc, trial_pb2
from pbt_service.core.types import CheckpointPolicy, CheckpointState, Measurement, StudyConfig, StudyState
from pbt_service.server import RunningServer
from tests.service.conftest import simple_config
from worker_client import PbtClient


@pytest.fixture
def database_url(storage_url: str) -> str:
    """Every backend (the root conftest's `storage_url`)."""
    return storage_url


@pytest.fixture
def stub(server: RunningServer) -> pbt_service_pb2_grpc.PbtServiceStub:
    return pbt_service_pb2_grpc.PbtServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))


def rooted(config: StudyConfig, keep_best: int = 0) -> StudyConfig:
    return dataclasses.replace(config, checkpoints=CheckpointPolicy(("/data/ckpt",), keep_best))


def refused(call: object, *args: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call(*args)  # type: ignore[operator]
    return error.value


def test_pause_and_resume_over_grpc(client: PbtClient, stub: pbt_service_pb2_grpc.PbtServiceStub) -> None:
    client.create_study("p", simple_config(population=2, max_trials=2))
    (held,) = client.get_new_suggestion("p", "w1").trials
    assert client.pause_study("p").state is StudyState.PAUSED
    reply = stub.GetNewSuggestion(pb.GetNewSuggestionRequest(study="p", worker_id="w2"))
    assert reply.study_paused and not reply.trials and not reply.study_done and reply.retry_after_seconds > 0
    assert client.get_new_suggestion("p", "w1").trials == (held,)
    client.report_measurement(held.id, "w1", Measurement(1, {"score": 1.0}))
    client.complete_trial(held.id, "w1")
    assert client.list_studies()[0].state is StudyState.PAUSED
    assert client.resume_study("p").state is StudyState.ACTIVE
    (second,) = client.get_new_suggestion("p", "w2").trials
    client.report_measurement(second.id, "w2", Measurement(1, {"score": 2.0}))
    client.complete_trial(second.id, "w2")
    assert client.get_new_suggestion("p", "w2").study_done
    assert refused(client.pause_study, "p").code() == grpc.StatusCode.FAILED_PRECONDITION
    assert refused(client.resume_study, "p").code() == grpc.StatusCode.FAILED_PRECONDITION
    assert refused(client.pause_study, "nope").code() == grpc.StatusCode.NOT_FOUND
    error = refused(client.pause_study, "bad name!")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "name" in (error.details() or "")
    assert client.get_study("p").state is StudyState.DONE


def test_collection_marks_checkpoints_deleted_on_the_wire(client: PbtClient) -> None:
    client.create_study("c", rooted(simple_config(population=2, max_trials=2)))
    for worker in ("a", "b"):
        (trial,) = client.get_new_suggestion("c", worker).trials
        for step in (1, 2):
            path = f"/data/ckpt/{trial.id}/{step}"
            client.report_measurement(trial.id, worker, Measurement(step, {"score": float(step)}, path))
        client.complete_trial(trial.id, worker)
    assert client.get_new_suggestion("c", "a").study_done
    collection = client.collect_checkpoints("c")
    assert collection.roots == ("/data/ckpt",) and not collection.truncated
    assert len(collection.checkpoints) == 4  # done, keep_best 0: nothing can be needed
    first = client.collect_checkpoints("c", max_checkpoints=1)
    assert first.truncated and first.checkpoints == collection.checkpoints[:1]
    assert client.confirm_checkpoints_deleted("c", [c.path for c in collection.checkpoints]) == 4
    assert client.confirm_checkpoints_deleted("c", [c.path for c in collection.checkpoints]) == 0
    trial = client.get_trial(collection.checkpoints[0].trial_id)
    assert {m.checkpoint_state for m in trial.measurements} == {CheckpointState.DELETED}
    assert trial.final_measurement is not None and trial.final_measurement.checkpoint_state is CheckpointState.DELETED


def test_bad_collection_requests_change_nothing(
    client: PbtClient, stub: pbt_service_pb2_grpc.PbtServiceStub
) -> None:
    client.create_study("c", rooted(simple_config(population=2)))
    cases = [
        (stub.CollectCheckpoints, pb.CollectCheckpointsRequest(study="c", max_checkpoints=-1), "max_checkpoints"),
        (stub.CollectCheckpoints, pb.CollectCheckpointsRequest(study="c", max_checkpoints=10_001), "max_checkpoints"),
        (stub.CollectCheckpoints, pb.CollectCheckpointsRequest(study=""), "study"),
        (stub.ConfirmCheckpointsDeleted, pb.ConfirmCheckpointsDeletedRequest(study="c", paths=[""]), "paths[0]"),
        (stub.ConfirmCheckpointsDeleted, pb.ConfirmCheckpointsDeletedRequest(study="c", paths=["x" * 5000]),
         "paths[0]"),
    ]  # fmt: skip
    for method, request, field in cases:
        error = refused(method, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and field in (error.details() or ""), request
    missing = refused(stub.CollectCheckpoints, pb.CollectCheckpointsRequest(study="nope"))
    assert missing.code() == grpc.StatusCode.NOT_FOUND


def test_reports_outside_the_roots_and_bad_roots_are_invalid_arguments(
    client: PbtClient, stub: pbt_service_pb2_grpc.PbtServiceStub
) -> None:
    bad = dataclasses.replace(simple_config(), checkpoints=CheckpointPolicy(("relative/dir",)))
    error = refused(client.create_study, "bad", bad)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "config.checkpoints.roots[0]" in (error.details() or "")
    client.create_study("r", rooted(simple_config(population=2)))
    (trial,) = client.get_new_suggestion("r", "w").trials
    request = pb.ReportMeasurementRequest(
        trial_id=trial.id, worker_id="w",
        measurement=trial_pb2.Measurement(step=1, metrics={"score": 1.0}, checkpoint_path="/home/someone"),
    )  # fmt: skip
    error = refused(stub.ReportMeasurement, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "measurement.checkpoint_path" in (error.details() or "") and "/data/ckpt" in (error.details() or "")
    assert client.get_trial(trial.id).measurements == ()
