"""One client flooding a real `pbt-service serve` (tokens required, default limits) with oversized
and malformed requests while 8 well-behaved workers run the PBT loop: the short CI version of
`benchmarks/flood.py` (docs/security.md, "One client flooding the server").

Asserted: no request of a well-behaved worker fails (no retries: every RpcError counts) and the
workers complete cycles during every flood phase; every flood request is refused with a status of
`REFUSALS` (never OK, INTERNAL, UNKNOWN, DEADLINE_EXCEEDED); the server still runs, reports
SERVING and answers a normal call afterwards; its RSS stays bounded. The throughput ratio is the
benchmark's to measure: timing assertions flake on a loaded 2-core CI machine.
"""

from __future__ import annotations

from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks.load.flood_clients import (
    ADMIN_TOKEN,
    MAX_MESSAGE_BYTES,
    REFUSALS,
    STUDY,
    Phase,
    Variant,
    bearer,
    create_study,
    create_token,
    flood_server,
    rss_mb,
    run_schedule,
)
from benchmarks.load.system import fresh_database
from pbt_service.api.v1 import pbt_service_pb2, pbt_service_pb2_grpc

PHASE_SECONDS = 3.0
FLOOD_THREADS = 64
RSS_GROWTH_MB = 2 * FLOOD_THREADS * MAX_MESSAGE_BYTES / 2**20 + 128
"""The flood keeps up to 64 bodies of about 4 MiB in flight, each of which the server may hold
twice (received, then parsed); beyond that RSS must not grow (~+250 MiB measured)."""


def test_a_flooding_client_neither_fails_nor_stops_the_well_behaved_workers(tmp_path: Path) -> None:
    url = fresh_database("sqlite", None, "flood", tmp_path)
    log = tmp_path / "server.log"
    with flood_server(url, log) as server:
        create_study(server.address, ADMIN_TOKEN)
        worker_token = create_token(url, "test-flood-workers", "worker", STUDY)
        tokens = {"valid": create_token(url, "test-flood-flooder", "worker"), "none": None}
        phases = [
            Phase("baseline", None, True),
            Phase("flood", Variant("valid", 8, FLOOD_THREADS), True),
            Phase("flood", Variant("none", 1, 24), True),
        ]
        outcome = run_schedule(server, tokens, worker_token, phases, PHASE_SECONDS, workers=8, gap=1.0)

        assert server.process.poll() is None, log.read_text(errors="replace")[-3000:]
        with grpc.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            study = pbt_service_pb2_grpc.PbtServiceStub(channel).GetStudy(
                pbt_service_pb2.GetStudyRequest(name=STUDY), timeout=10, metadata=bearer(worker_token)
            )
            assert study.name == STUDY
        rss_end = rss_mb(server.pid)[0]

    summary = "; ".join(
        f"{r.phase.name} [{r.phase.variant.label if r.phase.variant else '-'}]: {len(r.cycles)} cycles, "
        f"flood {dict(r.flood.codes) if r.flood else '-'}, RSS {r.rss_mb:.0f} MiB (peak {r.hwm_mb:.0f})"
        for r in outcome.phases
    )  # fmt: skip
    print(summary)
    assert not outcome.worker_errors, f"well-behaved worker requests failed: {outcome.worker_errors[:10]}; {summary}"
    for result in outcome.phases:
        assert result.cycles, f"no worker cycle completed in {result.phase}: {summary}"
        if result.flood is None:
            continue
        assert result.flood.sent > 0, summary
        assert set(result.flood.codes) <= set(REFUSALS), f"{result.flood.bad}; {summary}"
        assert "OK" not in result.flood.codes and "INTERNAL" not in result.flood.codes
        assert "UNKNOWN" not in result.flood.codes
        assert result.flood.codes["RESOURCE_EXHAUSTED"] > 0, "no oversized body was refused for its size"
    refused = set().union(*(r.flood.codes for r in outcome.phases if r.flood))
    assert {"INVALID_ARGUMENT", "UNAUTHENTICATED"} <= refused, refused
    growth = max(rss_end, *(r.rss_mb for r in outcome.phases)) - outcome.rss_start_mb
    assert growth < RSS_GROWTH_MB, f"server RSS grew by {growth:.0f} MiB: {summary}"
