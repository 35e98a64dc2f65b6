"""The limits of `pbt_service.limits` over real gRPC, on SQLite and PostgreSQL alike: each request
an outside tester found to break the service (issue 9) now gets INVALID_ARGUMENT naming the field,
with a short message, and leaves the database as it was; replies stay under the 4 MiB limit."""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from pbt_service import converters, limits
from pbt_service.api.v1 import pbt_service_pb2 as pb
from pbt_service.api.v1 import pbt_service_pb2_grpc, study_pb2, trial_pb2
from pbt_service.core.types import (
    Goal,
    Measurement,
    Objective,
    ParameterSpec,
    ParameterType,
    Study,
    StudyConfig,
    Trial,
    TrialStatus,
)
from pbt_service.server import RunningServer
from tests.service.conftest import simple_config
from worker_client import PbtClient

Stub = pbt_service_pb2_grpc.PbtServiceStub
MiB = 1024 * 1024


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """SQLite and PostgreSQL: the limits are the API's, so both backends answer alike."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/pbt.db"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def stub(server: RunningServer) -> Iterator[Stub]:
    """A stub with gRPC's default message limits, like any client's."""
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pbt_service_pb2_grpc.PbtServiceStub(channel)


def snapshot(client: PbtClient) -> tuple[list[Study], dict[str, list[Trial]]]:
    studies = client.list_studies()
    return studies, {s.name: client.list_trials(s.name) for s in studies}


def invalid(call: Callable[[], object], field: str) -> str:
    """The call is refused with INVALID_ARGUMENT naming `field` in a short message."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    error = caught.value
    assert isinstance(error, grpc.RpcError)
    details = error.details() or ""
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), details[:300])
    assert field in details, (field, details)
    assert len(details) < 500, details[:600]
    return details


def invalid_config(stub: Stub, change: Callable[[study_pb2.StudyConfig], object], field: str) -> str:
    """CreateStudy with the changed base config is refused naming `field`."""
    return invalid(lambda: create(stub, "refused", change), field)


def base_config() -> study_pb2.StudyConfig:
    """lr (log float), h (float), opt (categorical), n (discrete); objective score."""
    config = converters.study_config_to_proto(simple_config(population=2))
    config.parameters.add(name="opt", categorical=study_pb2.CategoricalValues(values=["sgd", "adam"]))
    config.parameters.add(name="n", discrete=study_pb2.DiscreteValues(values=[1.0, 2.0, 4.0]))
    return config


def create(stub: Stub, name: str, change: Callable[[study_pb2.StudyConfig], object] = lambda c: None) -> object:
    config = base_config()
    change(config)
    return stub.CreateStudy(pb.CreateStudyRequest(name=name, config=config))


def replace_values(message: Any, values: list[Any], field: str = "values") -> None:
    message.ClearField(field)
    getattr(message, field).extend(values)


def held_trial(client: PbtClient, study: str = "ok", worker: str = "w1") -> Trial:
    client.create_study(study, converters.study_config_from_proto(base_config()), exist_ok=True)
    (trial,) = client.get_new_suggestion(study, worker).trials
    return trial


def report(stub: Stub, trial: Trial, measurement: trial_pb2.Measurement, worker: str = "w1") -> object:
    request = pb.ReportMeasurementRequest(trial_id=trial.id, worker_id=worker, measurement=measurement)
    return stub.ReportMeasurement(request)


def token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# --- item 1: page tokens ----------------------------------------------------------------------


def test_page_tokens_the_service_did_not_issue_are_refused(client: PbtClient, stub: Stub) -> None:
    client.create_study("a", simple_config(population=3))
    client.create_study("b", simple_config())
    trials = [client.get_new_suggestion("a", f"w{i}").trials[0] for i in range(3)]
    before = snapshot(client)
    issued = stub.ListTrials(pb.ListTrialsRequest(study="a", page_size=1)).next_page_token
    studies_token = stub.ListStudies(pb.ListStudiesRequest(page_size=1)).next_page_token
    assert issued and studies_token
    forged = [
        "9223372036854775808", "0", "1", "٣", "abc", "x" * 10_000, "\x00", issued + "=", issued + "A",
        token("v1:trials:0"), token("v1:trials:9223372036854775808"), token("v1:trials:01"), token("v1:trials:-1"),
        token("v2:trials:1"), token("v1:trials:1\n"), token("v1:studies:a"),
    ]  # fmt: skip
    for value in forged:
        invalid(functools.partial(stub.ListTrials, pb.ListTrialsRequest(study="a", page_token=value)), "page_token")
    for value in [*forged[:9], issued, token("v1:studies:a\n"), token("v1:studies:bad name")]:
        invalid(functools.partial(stub.ListStudies, pb.ListStudiesRequest(page_token=value)), "page_token")
    second = stub.ListTrials(pb.ListTrialsRequest(study="a", page_size=1, page_token=issued))
    assert [t.id for t in second.trials] == [trials[1].id]
    assert [t.id for t in client.list_trials("a", page_size=1)] == [t.id for t in trials]
    last = stub.ListStudies(pb.ListStudiesRequest(page_size=1, page_token=studies_token))
    assert [s.name for s in last.studies] == ["b"] and not last.next_page_token
    assert snapshot(client) == before


# --- items 2 and 3: every accepted config runs ------------------------------------------------


def test_numbers_that_cannot_run_are_refused(client: PbtClient, stub: Stub) -> None:
    def float_range(low: float, high: float) -> Callable[[study_pb2.StudyConfig], None]:
        return lambda c: c.parameters[1].float_range.CopyFrom(study_pb2.FloatRange(low=low, high=high))

    def factors(*values: float) -> Callable[[study_pb2.StudyConfig], None]:
        return lambda c: replace_values(c.algorithm, list(values), "perturbation_factors")

    cases: list[tuple[Callable[[study_pb2.StudyConfig], object], str]] = [
        (float_range(-1.7e308, 1.7e308), "config.parameters[1].float_range.low"),
        (float_range(0.0, 1.7e308), "config.parameters[1].float_range.high"),
        (float_range(0.0, float("inf")), "config.parameters[1].float_range.high"),
        (lambda c: c.parameters[3].discrete.values.append(1e308), "config.parameters[3].discrete.values[3]"),
        (factors(1e308), "config.algorithm.perturbation_factors[0]"),
        (factors(0.8, 100.5), "config.algorithm.perturbation_factors[1]"),
        (factors(0.0), "config.algorithm.perturbation_factors[0]"),
        (lambda c: setattr(c.algorithm, "opponent_generations", 2**31 - 1), "config.algorithm.opponent_generations"),
        (lambda c: setattr(c.algorithm, "population_size", 2**31 - 1), "config.algorithm.population_size"),
    ]
    for change, field in cases:
        invalid_config(stub, change, field)
    assert client.list_studies() == []
    # At the limits the study runs into its second generation.
    at_limits = base_config()
    at_limits.parameters[1].float_range.CopyFrom(study_pb2.FloatRange(low=-1e300, high=1e300))
    at_limits.parameters.add(name="i", integer_range=study_pb2.IntegerRange(low=-(2**63), high=2**63 - 1))
    replace_values(at_limits.algorithm, [limits.MAX_PERTURBATION_FACTOR, 1e-300], "perturbation_factors")
    stub.CreateStudy(pb.CreateStudyRequest(name="edge", config=at_limits))
    generations = set()
    for step in range(1, 6):
        (trial,) = client.get_new_suggestion("edge", "w").trials
        generations.add(trial.generation)
        client.report_measurement(trial.id, "w", Measurement(step, {"score": float(step)}, f"/ckpt/{trial.id}"))
        client.complete_trial(trial.id, "w")
    assert max(generations) >= 1


# --- item 4: names that do not fit a column ---------------------------------------------------


def test_names_longer_than_the_limit_are_refused_and_the_longest_are_stored(client: PbtClient, stub: Stub) -> None:
    long = "x" * 300
    config_cases: list[tuple[Callable[[study_pb2.StudyConfig], object], str]] = [
        (lambda c: setattr(c.parameters[0], "name", "p" * 129), "config.parameters[0].name"),
        (lambda c: setattr(c.objectives[0], "metric", long), "config.objectives[0].metric"),
        (lambda c: c.parameters[2].categorical.values.append(long), "config.parameters[2].categorical.values[2]"),
        (
            lambda c: c.parameters[1].condition.CopyFrom(study_pb2.Condition(parent=long, categories=["sgd"])),
            "config.parameters[1].condition.parent",
        ),
    ]
    for change, field in config_cases:
        invalid_config(stub, change, field)
    trial = held_trial(client)
    before = snapshot(client)
    details = invalid(lambda: report(stub, trial, trial_pb2.Measurement(step=1, metrics={"score": 1, long: 2})),
                      "measurement.metrics")  # fmt: skip
    assert "at most 128" in details
    final = trial_pb2.Measurement(step=1, metrics={"score": 1, long: 2})
    request = pb.CompleteTrialRequest(trial_id=trial.id, worker_id="w1", final_measurement=final)
    invalid(lambda: stub.CompleteTrial(request), "final_measurement.metrics")
    assert snapshot(client) == before
    # The longest names are stored and read back on every backend.
    name, metric = "p" * limits.MAX_NAME_LENGTH, "é" * limits.MAX_NAME_LENGTH
    longest = StudyConfig(
        parameters=(ParameterSpec(name, ParameterType.CATEGORICAL, values=(metric,)),),
        objectives=(Objective(metric, Goal.MAXIMIZE),),
    )
    client.create_study("longest", longest)
    (held,) = client.get_new_suggestion("longest", "w" * limits.MAX_WORKER_ID_LENGTH).trials
    assert held.hparams == {name: metric}
    client.report_measurement(held.id, held.worker_id, Measurement(1, {metric: 1.0, name: 2.0}))
    done = client.complete_trial(held.id, held.worker_id)
    assert done.status is TrialStatus.COMPLETED and client.get_trial(held.id) == done


# --- item 5: NUL and control characters -------------------------------------------------------


def test_nul_and_control_characters_are_refused_and_the_study_keeps_working(
    client: PbtClient, stub: Stub
) -> None:
    config_cases: list[tuple[Callable[[study_pb2.StudyConfig], object], str]] = [
        (lambda c: setattr(c.parameters[0], "name", "l\x00r"), "config.parameters[0].name"),
        (lambda c: setattr(c.parameters[0], "name", "lr\n"), "config.parameters[0].name"),
        (lambda c: c.parameters[2].categorical.values.append("x\x00"), "config.parameters[2].categorical.values[2]"),
        (lambda c: setattr(c.objectives[0], "metric", "score\x00"), "config.objectives[0].metric"),
        (
            lambda c: c.parameters[1].condition.CopyFrom(study_pb2.Condition(parent="opt\x00", categories=["sgd"])),
            "config.parameters[1].condition.parent",
        ),
        (
            lambda c: c.parameters[1].condition.CopyFrom(study_pb2.Condition(parent="opt", categories=["sgd\x00"])),
            "config.parameters[1].condition.values",
        ),
        (lambda c: c.checkpoints.roots.append("/data\x00"), "config.checkpoints.roots[0]"),
    ]
    for change, field in config_cases:
        invalid_config(stub, change, field)
    trial = held_trial(client)
    before = snapshot(client)
    calls: list[tuple[Callable[[], object], str]] = [
        (lambda: stub.GetNewSuggestion(pb.GetNewSuggestionRequest(study="ok", worker_id="w\x00")), "worker_id"),
        (lambda: report(stub, trial, trial_pb2.Measurement(step=1, metrics={"score": 1, "a\x00": 1})),
         "measurement.metrics"),
        (lambda: report(stub, trial, trial_pb2.Measurement(step=1, metrics={"score": 1}, checkpoint_path="/c\x00")),
         "measurement.checkpoint_path"),
        (lambda: stub.CompleteTrial(pb.CompleteTrialRequest(trial_id=trial.id, worker_id="w1",
                                                            failure_reason="boom\x00")), "failure_reason"),
        (lambda: stub.StopTrial(pb.StopTrialRequest(trial_id=trial.id, reason="\x00")), "reason"),
        (lambda: stub.ConfirmCheckpointsDeleted(pb.ConfirmCheckpointsDeletedRequest(study="ok", paths=["/a\x00"])),
         "paths[0]"),
    ]  # fmt: skip
    for call, field in calls:
        invalid(call, field)
    assert snapshot(client) == before
    client.report_measurement(trial.id, "w1", Measurement(1, {"score": 1.0}, "/ckpt/1"))
    failed = client.complete_trial(trial.id, "w1", failure_reason="Traceback:\n  line 1\n\tValueError")
    assert failed.status is TrialStatus.FAILED and failed.status_message.endswith("\tValueError")
    assert client.get_new_suggestion("ok", "w2").trials


# --- item 7: messages quote a short prefix ----------------------------------------------------


def test_errors_about_huge_values_stay_short(client: PbtClient, stub: Stub) -> None:
    many = limits.MAX_VALUES_PER_PARAMETER
    calls: list[tuple[Callable[[], object], str]] = [
        (lambda: stub.CreateStudy(pb.CreateStudyRequest(name="n" * 1000, config=base_config())), "name"),
        (lambda: stub.GetStudy(pb.GetStudyRequest(name="n" * 100_000)), "name"),
        (lambda: create(stub, "s", lambda c: setattr(c.parameters[0], "name", "p" * 1000)),
         "config.parameters[0].name"),
        (lambda: create(stub, "s", lambda c: replace_values(c.parameters[3].discrete, [-i for i in range(many)])),
         "config.parameters[3].discrete.values[1]"),
        (lambda: create(stub, "s", lambda c: replace_values(c.parameters[2].categorical, ["v" * 128] * many)),
         "config.parameters[2].categorical.values[1]"),
        (lambda: stub.GetNewSuggestion(pb.GetNewSuggestionRequest(study="s", worker_id="w" * 100_000)), "worker_id"),
    ]  # fmt: skip
    for call, field in calls:
        details = invalid(call, field)
        assert len(details) < 300, details


# --- item 8: sizes ----------------------------------------------------------------------------


def test_oversized_data_is_refused(client: PbtClient, stub: Stub) -> None:
    huge = "/" + "p" * (3 * MiB)
    config_calls: list[tuple[Callable[[study_pb2.StudyConfig], object], str]] = [
        (lambda c: c.parameters[3].discrete.values.extend(float(i) for i in range(5, 480_000)), "config:"),
        (lambda c: c.parameters[3].discrete.values.extend(float(i) for i in range(5, 1003)),
         "config.parameters[3].discrete.values"),
        (lambda c: [c.parameters.add(name=f"q{i}", float_range=study_pb2.FloatRange(high=1)) for i in range(97)],
         "config.parameters"),
        (lambda c: [c.objectives.add(metric=f"m{i}", goal=study_pb2.MINIMIZE) for i in range(16)], "config.objectives"),
    ]  # fmt: skip
    for change, field in config_calls:
        invalid_config(stub, change, field)
    trial = held_trial(client)
    before = snapshot(client)
    many_metrics = {f"m{i}": float(i) for i in range(50_000)} | {"score": 1.0}
    wide_names = {"score": 1.0} | {"é" * 120 + str(i): 0.0 for i in range(40)}
    calls: list[tuple[Callable[[], object], str]] = [
        (lambda: report(stub, trial, trial_pb2.Measurement(step=1, metrics={"score": 1}, checkpoint_path=huge)),
         "measurement.checkpoint_path"),
        (lambda: report(stub, trial, trial_pb2.Measurement(step=1, metrics=many_metrics)), "measurement.metrics"),
        (lambda: report(stub, trial, trial_pb2.Measurement(step=1, metrics=dict(list(many_metrics.items())[-65:]))),
         "measurement.metrics"),
        (lambda: report(stub, trial, trial_pb2.Measurement(step=1, metrics=wide_names)), "measurement: encodes"),
        (lambda: stub.CompleteTrial(pb.CompleteTrialRequest(trial_id=trial.id, worker_id="w1", failure_reason=huge)),
         "failure_reason"),
        (lambda: stub.CompleteTrial(pb.CompleteTrialRequest(
            trial_id=trial.id, worker_id="w1",
            final_measurement=trial_pb2.Measurement(step=1, metrics={"score": 1}, checkpoint_path=huge))),
         "final_measurement.checkpoint_path"),
        (lambda: stub.StopTrial(pb.StopTrialRequest(trial_id=trial.id, reason=huge)), "reason"),
        (lambda: stub.GetNewSuggestion(pb.GetNewSuggestionRequest(study="ok", worker_id="w" * 257)), "worker_id"),
    ]  # fmt: skip
    for call, field in calls:
        invalid(call, field)
    assert snapshot(client) == before


def test_list_studies_is_paged_by_bytes_and_count(client: PbtClient, stub: Stub) -> None:
    """Five studies of about 0.9 MiB: one reply would pass 4 MiB; pages stay under 3 MiB."""
    values = tuple(f"{j:04d}" + "v" * 124 for j in range(900))
    big = StudyConfig(
        parameters=tuple(ParameterSpec(f"c{i}", ParameterType.CATEGORICAL, values=values) for i in range(8)),
        objectives=(Objective("score"),),
    )
    assert 0.8 * MiB < converters.study_config_to_proto(big).ByteSize() <= limits.MAX_CONFIG_BYTES
    names = [f"s{i}" for i in range(5)]
    for name in names:
        client.create_study(name, big)
    first = stub.ListStudies(pb.ListStudiesRequest())
    assert first.ByteSize() <= limits.MAX_REPLY_BYTES and first.next_page_token
    assert 1 <= len(first.studies) < len(names)
    assert [s.name for s in client.list_studies()] == names
    pages, request = [], pb.ListStudiesRequest(page_size=2)
    while True:
        reply = stub.ListStudies(request)
        pages.append([s.name for s in reply.studies])
        if not reply.next_page_token:
            break
        request.page_token = reply.next_page_token
    assert pages == [names[0:2], names[2:4], names[4:]]


def test_list_trials_is_paged_by_bytes(client: PbtClient, stub: Stub, monkeypatch: pytest.MonkeyPatch) -> None:
    client.create_study("t", simple_config(population=6))
    ids = []
    for i in range(6):
        (trial,) = client.get_new_suggestion("t", f"w{i}").trials
        client.report_measurement(trial.id, f"w{i}", Measurement(1, {"score": 1.0}, "/ckpt/" + "c" * 500))
        ids.append(trial.id)
    monkeypatch.setattr(limits, "MAX_REPLY_BYTES", 2000)
    reply = stub.ListTrials(pb.ListTrialsRequest(study="t"))
    assert 1 <= len(reply.trials) < 6 and reply.ByteSize() <= 2000 + reply.trials[-1].ByteSize()
    assert reply.next_page_token
    assert [t.id for t in client.list_trials("t")] == ids
    omitted = stub.ListTrials(pb.ListTrialsRequest(study="t", omit_measurements=True))
    assert len(omitted.trials) == 6 and not omitted.next_page_token


def test_reports_beyond_the_measurements_per_trial_limit_are_refused(client: PbtClient) -> None:
    trial = held_trial(client)
    for step in range(1, limits.MAX_MEASUREMENTS_PER_TRIAL + 1):
        client.report_measurement(trial.id, "w1", Measurement(step, {"score": 1.0}))
    with pytest.raises(grpc.RpcError) as error:
        client.report_measurement(trial.id, "w1", Measurement(10_000, {"score": 1.0}))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"{limits.MAX_MEASUREMENTS_PER_TRIAL} measurements" in (error.value.details() or "")
    client.report_measurement(trial.id, "w1", Measurement(1, {"score": 1.0}))  # a repeat is still a no-op
    assert len(client.get_trial(trial.id).measurements) == limits.MAX_MEASUREMENTS_PER_TRIAL


# --- item 9: names that only look valid -------------------------------------------------------


def test_trailing_newlines_and_padded_worker_ids_are_refused(client: PbtClient, stub: Stub) -> None:
    client.create_study("abc", simple_config())
    before = snapshot(client)
    calls: list[tuple[Callable[[], object], str]] = [
        (lambda: stub.CreateStudy(pb.CreateStudyRequest(name="abc\n", config=base_config())), "name"),
        (lambda: stub.GetStudy(pb.GetStudyRequest(name="abc\n")), "name"),
        (lambda: stub.ListTrials(pb.ListTrialsRequest(study="abc\n")), "study"),
        *[
            (lambda w=w: stub.GetNewSuggestion(pb.GetNewSuggestionRequest(study="abc", worker_id=w)), "worker_id")
            for w in (" w1", "w1 ", "w1\n", "\tw1", "w\x7f1", "w\u20281")
        ],
    ]
    for call, field in calls:
        invalid(call, field)
    assert snapshot(client) == before


# --- item 11: unset and invalid settings are told apart ---------------------------------------


def test_unknown_enums_and_explicit_zeros_are_refused(client: PbtClient, stub: Stub) -> None:
    cases: list[tuple[Callable[[study_pb2.StudyConfig], object], str]] = [
        (lambda c: setattr(c.parameters[1].float_range, "scale", 99), "config.parameters[1].float_range.scale"),
        (lambda c: setattr(c.algorithm, "population_size", 0), "config.algorithm.population_size"),
        (lambda c: setattr(c.objectives[0], "goal", 99), "config.objectives[0].goal"),
        (lambda c: setattr(c, "comparison", 99), "config.comparison"),
    ]
    for change, field in cases:
        invalid_config(stub, change, field)
    assert client.list_studies() == []
    create(stub, "defaults", lambda c: c.algorithm.ClearField("population_size"))
    assert client.get_study("defaults").config.algorithm.population_size == 10
