"""The servicer is a thin adapter, and errors map to status codes by domain type: a bug is INTERNAL
with an error id (logged with its stack trace), never INVALID_ARGUMENT and never a stack trace."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import grpc
import pytest

from pbt_service import service
from pbt_service.core import errors
from pbt_service.grpc_errors import status_of
from pbt_service.server import RunningServer
from pbt_service.store.errors import SchemaOutdatedError, TrialStateError
from worker_client import PbtClient

SERVICE_SOURCE = Path(service.__file__).read_text()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidArgumentError("x: bad"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotFoundError("study 'x' not found"), grpc.StatusCode.NOT_FOUND),
        (errors.AlreadyExistsError("taken"), grpc.StatusCode.ALREADY_EXISTS),
        (errors.FailedPreconditionError("wrong state"), grpc.StatusCode.FAILED_PRECONDITION),
        (TrialStateError("not active"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.UnavailableError("down"), grpc.StatusCode.UNAVAILABLE),
        (ValueError("a bug, not the client's fault"), grpc.StatusCode.INTERNAL),
        (KeyError("bug"), grpc.StatusCode.INTERNAL),
        (SchemaOutdatedError("old schema"), grpc.StatusCode.INTERNAL),
        (RuntimeError("bug"), grpc.StatusCode.INTERNAL),
    ],
)
def test_each_error_kind_has_one_status(error: BaseException, code: grpc.StatusCode) -> None:
    assert status_of(error) is code


def test_the_servicer_imports_no_store_and_holds_no_rules() -> None:
    tree = ast.parse(SERVICE_SOURCE)
    imported = {
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    } | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not [m for m in imported if m.startswith(("pbt_service.store", "sqlalchemy", "pbt_service.core.evolution"))]
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    rules = [n for n in names if any(word in n.lower() for word in ("lease", "renew", "repeat", "lock", "transaction"))]
    assert rules == []
    assert "select(" not in SERVICE_SOURCE and "execute(" not in SERVICE_SOURCE


def test_an_unexpected_error_is_internal_with_an_id_and_no_stack_trace(
    server: RunningServer, client: PbtClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise ValueError("an internal bug with a secret detail")

    monkeypatch.setattr(server.storage, "run", broken)
    with caplog.at_level(logging.ERROR, logger="pbt_service.grpc_errors"):
        with pytest.raises(grpc.RpcError) as raised:
            client.get_study("anything")
    error = raised.value
    assert error.code() is grpc.StatusCode.INTERNAL
    details: str = error.details()
    assert "secret" not in details and "Traceback" not in details
    error_id = details.split()[2].rstrip(";")
    assert len(error_id) == 12
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None
