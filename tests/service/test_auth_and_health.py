"""Token auth rejects with UNAUTHENTICATED; health checks stay open."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pbt_service.server import ServerSettings, create_server
from worker_client import PbtClient


def test_token_is_required_when_configured(tmp_path: Path) -> None:
    settings = ServerSettings(
        database_url=f"sqlite:///{tmp_path / 'a.db'}", host="127.0.0.1", port=0, auth_token="s3cret"
    )
    running = create_server(settings)
    address = f"127.0.0.1:{running.port}"
    try:
        with PbtClient(address, retry_seconds=0) as anonymous, pytest.raises(grpc.RpcError) as error:
            anonymous.list_studies()
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with (
            PbtClient(address, retry_seconds=0, token="wrong") as wrong,
            pytest.raises(grpc.RpcError) as error,
        ):
            wrong.list_studies()
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with PbtClient(address, token="s3cret") as good:
            assert good.list_studies() == []
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        running.stop(0)
