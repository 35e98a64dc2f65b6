"""Tokens, roles and study scopes, method by method from the policy table, on a real server over
SQLite and PostgreSQL: no token, a wrong token and a revoked token are UNAUTHENTICATED on every
method; a token for another study, or a role without the method's action, is PERMISSION_DENIED and
changes nothing; listing studies shows a limited token only its own; tokens never reach the log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import grpc
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from pbt_service import converters
from pbt_service.api.v1 import pbt_service_pb2 as pb
from pbt_service.api.v1 import pbt_service_pb2_grpc, trial_pb2
from pbt_service.auth import POLICY, create_token
from pbt_service.auth.policy import PBT_METHODS
from pbt_service.core.access import Action, Role
from pbt_service.core.types import Measurement
from pbt_service.server import SERVICE_NAME, RunningServer, ServerSettings, create_server
from pbt_service.store.sql_storage import SqlStorage
from tests.service.conftest import simple_config
from worker_client import PbtClient
from worker_client.settings import ClientSettings

ADMIN = "admin-bootstrap-secret"
SERVICE = pb.DESCRIPTOR.services_by_name["PbtService"]


@dataclass
class World:
    """A server with studies `a` and `b`, an active trial in each, and tokens of every kind."""

    running: RunningServer
    address: str
    tokens: dict[str, str]
    trial_a: int
    trial_b: int

    def stub(self) -> tuple[grpc.Channel, pbt_service_pb2_grpc.PbtServiceStub]:
        channel = grpc.insecure_channel(self.address)
        return channel, pbt_service_pb2_grpc.PbtServiceStub(channel)


def _now() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture
def world(storage_url: str, caplog: pytest.LogCaptureFixture) -> Iterator[World]:
    caplog.set_level(logging.DEBUG)
    storage = SqlStorage.from_url(storage_url)
    running = create_server(
        ServerSettings(database_url=storage_url, host="127.0.0.1", port=0, auth_token=ADMIN), storage
    )
    address = f"127.0.0.1:{running.port}"
    tokens = {"admin": ADMIN}
    for label, role, studies in (
        ("stored-admin", Role.ADMIN, None), ("worker-a", Role.WORKER, ["a"]), ("worker-b", Role.WORKER, ["b"]),
        ("worker-all", Role.WORKER, None), ("reader-a", Role.READER, ["a"]), ("reader-all", Role.READER, None),
        ("revoked", Role.WORKER, ["a"]),
    ):  # fmt: skip
        tokens[label], record = create_token(storage, label, role, studies, _now())
    revoked_id = record.id  # the last one
    storage.run(lambda tx: tx.revoke_token(revoked_id, _now()))
    with PbtClient(ClientSettings(address=address, token=ADMIN)) as admin:
        admin.create_study("a", simple_config())
        admin.create_study("b", simple_config())
    with PbtClient(ClientSettings(address=address, token=tokens["worker-a"])) as worker_a:
        trial_a = worker_a.get_new_suggestion("a", "wa").trials[0].id
    with PbtClient(ClientSettings(address=address, token=tokens["worker-b"])) as worker_b:
        trial_b = worker_b.get_new_suggestion("b", "wb").trials[0].id
    try:
        yield World(running, address, tokens, trial_a, trial_b)
    finally:
        running.stop(0)
        secrets = [value for key, value in tokens.items()]
        leaked = [r.getMessage() for r in caplog.records if any(s in r.getMessage() for s in secrets)]
        assert not leaked, leaked


def _measurement(step: int) -> trial_pb2.Measurement:
    return converters.measurement_to_proto(_domain_measurement(step))


def _domain_measurement(step: int) -> Measurement:
    return Measurement(step=step, metrics={"score": 0.5})


REQUESTS: dict[str, Callable[[str, int], Message]] = {
    "CreateStudy": lambda study, trial: pb.CreateStudyRequest(
        name=f"{study}-new", config=converters.study_config_to_proto(simple_config())
    ),
    "GetStudy": lambda study, trial: pb.GetStudyRequest(name=study),
    "ListStudies": lambda study, trial: pb.ListStudiesRequest(),
    "PauseStudy": lambda study, trial: pb.PauseStudyRequest(name=study),
    "ResumeStudy": lambda study, trial: pb.ResumeStudyRequest(name=study),
    "GetNewSuggestion": lambda study, trial: pb.GetNewSuggestionRequest(study=study, worker_id="w-probe"),
    "ReportMeasurement": lambda study, trial: pb.ReportMeasurementRequest(
        trial_id=trial, worker_id=f"w{study}", measurement=_measurement(1)
    ),
    "Heartbeat": lambda study, trial: pb.HeartbeatRequest(trial_id=trial, worker_id=f"w{study}"),
    "CompleteTrial": lambda study, trial: pb.CompleteTrialRequest(
        trial_id=trial, worker_id=f"w{study}", final_measurement=_measurement(2)
    ),
    "StopTrial": lambda study, trial: pb.StopTrialRequest(trial_id=trial, reason="probe"),
    "GetEarlyStoppingTrials": lambda study, trial: pb.GetEarlyStoppingTrialsRequest(study=study),
    "GetTrial": lambda study, trial: pb.GetTrialRequest(trial_id=trial),
    "ListTrials": lambda study, trial: pb.ListTrialsRequest(study=study),
    "CollectCheckpoints": lambda study, trial: pb.CollectCheckpointsRequest(study=study, dry_run=True),
    "ConfirmCheckpointsDeleted": lambda study, trial: pb.ConfirmCheckpointsDeletedRequest(study=study, paths=[]),
}
METHODS = [method.name for method in SERVICE.methods]


def _call(world: World, method: str, token: str | None, study: str = "a") -> tuple[grpc.StatusCode, Message | None]:
    trial = world.trial_a if study == "a" else world.trial_b
    request = REQUESTS[method](study, trial)
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else None
    channel, stub = world.stub()
    with channel:
        try:
            reply = getattr(stub, method)(request, timeout=10, metadata=metadata)
            return grpc.StatusCode.OK, reply
        except grpc.RpcError as error:
            return error.code(), None


def _study_state(world: World) -> tuple[object, ...]:
    """Everything a refused call could have changed: both studies and all their trials."""
    with PbtClient(ClientSettings(address=world.address, token=ADMIN)) as admin:
        return tuple(
            (admin.get_study(name), tuple(admin.list_trials(name))) for name in ("a", "b")
        ) + (tuple(s.name for s in admin.list_studies()),)


def test_every_method_of_every_served_service_has_a_policy_entry(world: World) -> None:
    with grpc.insecure_channel(world.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10,
            metadata=(("authorization", f"Bearer {ADMIN}"),),
        )  # fmt: skip
        services = [s.name for reply in replies for s in reply.list_services_response.service]
    assert SERVICE_NAME in services and len(services) >= 3
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    served = [f"/{name}/{method.name}" for name in services for method in pool.FindServiceByName(name).methods]
    assert [method for method in served if method not in POLICY] == []
    assert sorted(PBT_METHODS) == sorted(METHODS) == sorted(REQUESTS)


@pytest.mark.parametrize("method", METHODS)
def test_missing_wrong_and_revoked_tokens_are_unauthenticated(world: World, method: str) -> None:
    before = _study_state(world)
    for token in (None, "wrong-token", world.tokens["revoked"], world.tokens["worker-a"] + "x", ""):
        code, _ = _call(world, method, token)
        assert code == grpc.StatusCode.UNAUTHENTICATED, (method, token)
    assert _study_state(world) == before


@pytest.mark.parametrize("method", METHODS)
def test_a_token_for_another_study_or_a_weaker_role_is_permission_denied(world: World, method: str) -> None:
    rule = PBT_METHODS[method]
    before = _study_state(world)
    refusals = ["worker-b"] if rule.scope.value in ("name", "study", "trial") else []
    if rule.action is not Action.READ:
        refusals += ["reader-a", "reader-all"]
    if rule.action is Action.ADMIN:
        refusals += ["worker-a", "worker-all"]
    for label in refusals:
        code, _ = _call(world, method, world.tokens[label], "a")
        assert code == grpc.StatusCode.PERMISSION_DENIED, (method, label)
    assert _study_state(world) == before


@pytest.mark.parametrize("method", METHODS)
def test_tokens_that_cover_the_study_pass_the_check(world: World, method: str) -> None:
    rule = PBT_METHODS[method]
    allowed = ["admin", "stored-admin"]
    if rule.action is not Action.ADMIN:
        allowed += ["worker-a", "worker-all"]
    if rule.action is Action.READ:
        allowed += ["reader-a", "reader-all"]
    for label in allowed:
        code, _ = _call(world, method, world.tokens[label], "a")
        # Past the token check, the call meets the service's own rules (a trial held by another
        # worker, a study that exists already): never an access refusal.
        assert code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED), (method, label, code)


def test_listing_studies_shows_a_limited_token_only_its_own(world: World) -> None:
    expected = {"worker-a": ["a"], "worker-b": ["b"], "reader-a": ["a"], "reader-all": ["a", "b"], "admin": ["a", "b"]}
    for label, names in expected.items():
        with PbtClient(ClientSettings(address=world.address, token=world.tokens[label])) as client:
            assert [s.name for s in client.list_studies()] == names, label


def test_a_study_token_works_its_own_study_end_to_end(world: World) -> None:
    with PbtClient(ClientSettings(address=world.address, token=world.tokens["worker-a"])) as client:
        assert client.report_measurement(world.trial_a, "wa", _domain_measurement(1)) is False
        trial = client.complete_trial(world.trial_a, "wa")
        assert trial.status.value == "completed"
        assert client.create_study("a", simple_config(), exist_ok=True).name == "a"
        with pytest.raises(grpc.RpcError) as error:
            client.create_study("c", simple_config(), exist_ok=True)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_health_stays_open_and_reflection_needs_a_valid_token(world: World) -> None:
    with grpc.insecure_channel(world.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        ask = reflection_pb2.ServerReflectionRequest(list_services="")
        for token, code in ((None, grpc.StatusCode.UNAUTHENTICATED),
                            (world.tokens["revoked"], grpc.StatusCode.UNAUTHENTICATED)):  # fmt: skip
            metadata = (("authorization", f"Bearer {token}"),) if token else None
            with pytest.raises(grpc.RpcError) as error:
                list(reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                    iter([ask]), timeout=5, metadata=metadata))  # fmt: skip
            assert error.value.code() == code
        replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([ask]), timeout=5, metadata=(("authorization", f"Bearer {world.tokens['reader-a']}"),)
        )
        assert SERVICE_NAME in [s.name for r in replies for s in r.list_services_response.service]


def test_a_revocation_holds_at_once(world: World) -> None:
    storage = world.running.storage
    if True:
        token, record = create_token(storage, "short-lived", Role.READER, None, _now())
        assert _call(world, "ListStudies", token)[0] == grpc.StatusCode.OK
        storage.run(lambda tx: tx.revoke_token(record.id, _now()))
        assert _call(world, "ListStudies", token)[0] == grpc.StatusCode.UNAUTHENTICATED
        stored = storage.run(lambda tx: tx.list_tokens())
        assert all(token not in repr(r) for r in stored)
        assert any(r.id == record.id and r.revoked for r in stored)
