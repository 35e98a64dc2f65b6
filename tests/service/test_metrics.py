"""The Prometheus metrics of a real server: scraped over HTTP after real calls, per server."""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pbt_service.controller import ServiceSettings
from pbt_service.server import RunningServer, ServerSettings, create_server
from pbt_service.store.base import Transaction
from pbt_service.store.sql_storage import SqlStorage, StorageSettings, TransientDatabaseError
from tests.fake_clock import FakeClock
from tests.service.conftest import simple_config
from worker_client import PbtClient

LEASE = 60.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(running: RunningServer) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{running.metrics_port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def calls(samples: Samples, method: str, code: str) -> float:
    return value(samples, "pbt_rpc_requests_total", method=method, code=code) or 0.0


class Outage:
    """Makes the storage's next transactions fail as a transient database error would."""

    def __init__(self, storage: SqlStorage, monkeypatch: pytest.MonkeyPatch) -> None:
        self.failures = 0
        original = storage.transaction

        @contextlib.contextmanager
        def flaky() -> Iterator[Transaction]:
            if self.failures:
                self.failures -= 1
                raise TransientDatabaseError("injected: connection refused")
            with original() as tx:
                yield tx

        monkeypatch.setattr(storage, "transaction", flaky)


@pytest.fixture
def storage(tmp_path: Path) -> SqlStorage:
    url = f"sqlite:///{tmp_path / 'pbt.db'}"
    # Two attempts and short pauses: an injected outage fails a call at once.
    return SqlStorage.from_url(url, StorageSettings(max_attempts=2, retry_base_delay_s=0.001))


@pytest.fixture
def running(storage: SqlStorage, clock: FakeClock) -> Iterator[RunningServer]:
    settings = ServerSettings(
        port=0, metrics_port=0, health_check_seconds=3600,  # no probe: injected failures are the calls'
        service=ServiceSettings(lease_seconds=LEASE, retry_after_seconds=0.01),
    )  # fmt: skip
    server = create_server(settings, storage, clock)
    yield server
    server.stop(0)


@pytest.fixture
def client(running: RunningServer) -> Iterator[PbtClient]:
    with PbtClient(f"127.0.0.1:{running.port}", timeout_seconds=10, retry_seconds=0) as c:
        yield c


def rpc_code(call: object) -> grpc.StatusCode:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return grpc.StatusCode.OK


def test_calls_are_counted_by_method_and_code(running: RunningServer, client: PbtClient) -> None:
    client.create_study("counted", simple_config(2))
    client.get_study("counted")
    client.get_study("counted")
    assert rpc_code(lambda: client.get_study("missing")) is grpc.StatusCode.NOT_FOUND
    assert rpc_code(lambda: client.get_study("not a name!")) is grpc.StatusCode.INVALID_ARGUMENT

    samples = scrape(running)
    assert calls(samples, "CreateStudy", "OK") == 1
    assert calls(samples, "GetStudy", "OK") == 2
    assert calls(samples, "GetStudy", "NOT_FOUND") == 1
    assert calls(samples, "GetStudy", "INVALID_ARGUMENT") == 1
    assert value(samples, "pbt_rpc_duration_seconds_count", method="GetStudy", code="OK") == 2
    assert (value(samples, "pbt_rpc_duration_seconds_sum", method="GetStudy", code="OK") or 0) > 0
    assert value(samples, "pbt_database_up") == 1
    assert value(samples, "pbt_suggestions_waiting") == 0


def test_trial_gauges_waits_and_lease_expiries(running: RunningServer, client: PbtClient, clock: FakeClock) -> None:
    client.create_study("leases", simple_config(2))
    client.create_study("other", simple_config(3))
    assert client.get_new_suggestion("leases", "w1").trials
    assert client.get_new_suggestion("leases", "w2").trials
    waited = client.get_new_suggestion("leases", "w3")  # the population is out: ask again later
    assert not waited.trials and not waited.study_done
    assert client.get_new_suggestion("other", "w4").trials

    samples = scrape(running)
    assert value(samples, "pbt_trials", study="leases", state="active") == 2
    assert value(samples, "pbt_trials", study="leases", state="stopped") == 0
    assert value(samples, "pbt_trials", study="other", state="active") == 1
    assert value(samples, "pbt_suggestion_waits_total", study="leases") == 1
    assert value(samples, "pbt_lease_expiries_total", study="leases") is None

    clock.advance(LEASE + 1)  # w1 and w2 go silent: the next suggestion of the study stops their trials
    client.get_new_suggestion("leases", "w3")
    samples = scrape(running)
    assert value(samples, "pbt_lease_expiries_total", study="leases") == 2
    assert value(samples, "pbt_trials", study="leases", state="stopped") == 2
    assert value(samples, "pbt_lease_expiries_total", study="other") is None
    assert calls(samples, "GetNewSuggestion", "OK") == 5


def test_database_retries_errors_and_a_scrape_while_the_database_is_down(
    running: RunningServer, client: PbtClient, storage: SqlStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.create_study("flaky", simple_config(2))
    assert client.get_new_suggestion("flaky", "w1").trials
    outage = Outage(storage, monkeypatch)
    outage.failures = 1  # one transient failure: the transaction is redone and the call succeeds
    client.get_study("flaky")
    outage.failures = 2  # both attempts fail: the call is UNAVAILABLE
    assert rpc_code(lambda: client.get_study("flaky")) is grpc.StatusCode.UNAVAILABLE

    outage.failures = 2  # the scrape's own read fails (twice): it still answers, database down
    samples = scrape(running)
    assert value(samples, "pbt_database_up") == 0
    assert not any(name == "pbt_trials" for name, _ in samples)
    assert value(samples, "pbt_database_retries_total") == 3  # the call's 1 and 1, the scrape's 1
    assert value(samples, "pbt_database_errors_total", kind="unavailable") == 1
    assert calls(samples, "GetStudy", "OK") == 1
    assert calls(samples, "GetStudy", "UNAVAILABLE") == 1

    samples = scrape(running)  # back
    assert value(samples, "pbt_database_up") == 1
    assert value(samples, "pbt_trials", study="flaky", state="active") == 1


def test_servers_in_one_process_count_their_own_calls(
    running: RunningServer, client: PbtClient, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'second.db'}"
    second = create_server(ServerSettings(database_url=url, port=0, metrics_port=0, health_check_seconds=3600))
    try:
        client.create_study("mine", simple_config(2))
        assert second.metrics_port not in (None, running.metrics_port)
        assert calls(scrape(running), "CreateStudy", "OK") == 1
        assert calls(scrape(second), "CreateStudy", "OK") == 0
    finally:
        second.stop(0)
    with pytest.raises(OSError):  # the metrics port is closed with the server
        scrape(second)


def test_health_checks_are_counted_under_their_full_name(running: RunningServer) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert rpc_code(lambda: channel.unary_unary("/pbt.v1.Nothing/Here")(b"", timeout=10)) is (
            grpc.StatusCode.UNIMPLEMENTED
        )
    samples = scrape(running)
    assert calls(samples, "/grpc.health.v1.Health/Check", "OK") == 1
    assert calls(samples, "unknown", "UNIMPLEMENTED") == 1


def test_no_metrics_port_unless_asked(server: RunningServer) -> None:
    assert server.metrics_port is None


def test_a_call_refused_for_its_token_is_counted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tokens.db'}"
    token = "metrics-test-token-0123456789abcdef"
    guarded = create_server(ServerSettings(database_url=url, port=0, metrics_port=0, auth_token=token,
                                           health_check_seconds=3600))  # fmt: skip
    try:
        with PbtClient(f"127.0.0.1:{guarded.port}", timeout_seconds=10, retry_seconds=0) as anonymous:
            assert rpc_code(anonymous.list_studies) is grpc.StatusCode.UNAUTHENTICATED
        with PbtClient(f"127.0.0.1:{guarded.port}", timeout_seconds=10, retry_seconds=0, token=token) as admin:
            admin.list_studies()
        samples = scrape(guarded)
        assert calls(samples, "ListStudies", "UNAUTHENTICATED") == 1
        assert calls(samples, "ListStudies", "OK") == 1
    finally:
        guarded.stop(0)
