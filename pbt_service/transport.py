"""The gRPC port: plaintext, TLS or mutual TLS, and the limits that keep one client from taking
the server from everyone else.

Limits, each a setting of `pbt_service.options`:
- `max_message_bytes`: a larger request is refused by grpcio with RESOURCE_EXHAUSTED before any
  of our code runs (replies are kept under 4 MiB by `pbt_service.limits`, so the client's default
  receive limit always holds).
- `max_streams_per_connection`: HTTP/2's MAX_CONCURRENT_STREAMS. A connection cannot have more
  calls in flight; more wait in the client (or, sent anyway, are reset with REFUSED_STREAM). 100,
  HTTP/2's recommended minimum: a lower limit makes a client with many calls in flight churn
  through resets, which costs more than queuing its calls (`pbt_service.fairness` does that).
- `max_concurrent_rpcs`: calls running or queued on this replica; beyond it RESOURCE_EXHAUSTED (a
  bound on the memory many clients together can make the server hold).
Per-request caps (page sizes, parameter counts, string lengths) are in `pbt_service.limits`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class TlsSettings:
    """The server's certificate chain and key (PEM); with `client_ca`, clients must present a
    certificate signed by it (mutual TLS)."""

    certificate: Path
    private_key: Path
    client_ca: Path | None = None


@dataclass(frozen=True)
class LimitSettings:
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_concurrent_rpcs: int | None = 1000
    max_streams_per_connection: int = 100

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_streams_per_connection"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.max_concurrent_rpcs is not None and self.max_concurrent_rpcs <= 0:
            raise ValueError("max_concurrent_rpcs must be > 0")


def server_options(limits: LimitSettings) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", limits.max_message_bytes),
        ("grpc.max_concurrent_streams", limits.max_streams_per_connection),
        # With grpc-core's overload protection on (its default) a stream beyond the limit is reset
        # (REFUSED_STREAM, UNAVAILABLE to the client) at once. Off, the client honours the
        # advertised limit and queues; it can still be reset when it counts a stream closed (it
        # has the reply) before the server does (the server has not yet freed the call).
        ("grpc.max_concurrent_streams_overload_protection", 0),
        # Replies stay far below 4 MiB (`pbt_service.limits.MAX_REPLY_BYTES`).
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
    ]


def credentials(tls: TlsSettings) -> grpc.ServerCredentials:
    """Raises OSError naming the file that cannot be read."""

    def read(path: Path, what: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as error:
            raise OSError(f"{what}: cannot read {path}: {error.strerror}") from None

    pair = (read(tls.private_key, "--tls-key"), read(tls.certificate, "--tls-cert"))
    client_ca = read(tls.client_ca, "--tls-client-ca") if tls.client_ca is not None else None
    return grpc.ssl_server_credentials([pair], root_certificates=client_ca, require_client_auth=client_ca is not None)


def bind(server: grpc.Server, host: str, port: int, tls: TlsSettings | None) -> int:
    """Opens the port (TLS when `tls` is set); returns the port bound. Raises OSError when it
    cannot be bound or a certificate file read."""
    address = f"{host}:{port}"
    try:
        bound: int = server.add_secure_port(address, credentials(tls)) if tls else server.add_insecure_port(address)
    except RuntimeError as error:  # grpcio raises RuntimeError for a port it cannot bind
        raise OSError(f"could not bind {address}: {error}") from None
    if bound == 0:
        raise OSError(f"could not bind {address}")
    return bound
