"""How a client reaches the service: one frozen settings object, read once from command-line flags
and `PBT_*` environment variables (a flag wins over its variable), and passed down to `PbtClient`,
`pbt-worker`, `pbt-results`, `Job` and `run_workers`.

Example:
    parser = argparse.ArgumentParser()
    add_client_arguments(parser)
    settings = client_settings(parser.parse_args())      # raises SettingsError naming the flag
    with PbtClient(settings) as client: ...

| flag | variable | meaning |
|---|---|---|
| --service HOST:PORT | PBT_SERVICE | the service's address |
| --token TOKEN | PBT_AUTH_TOKEN | sent as `authorization: Bearer TOKEN` (prefer the variable: flags show in `ps`) |
| --tls-ca FILE | PBT_TLS_CA | TLS with this root certificate (PEM) |
| --tls-cert FILE, --tls-key FILE | PBT_TLS_CERT, PBT_TLS_KEY | a client certificate for mutual TLS |
| --tls | PBT_TLS=1 | TLS with the system's root certificates |
| --deadline-seconds S | PBT_DEADLINE_SECONDS | deadline of each call |
| --service-retry-seconds S | PBT_SERVICE_RETRY_SECONDS | keep retrying an unreachable service this long |
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DEADLINE_SECONDS = 30.0
DEFAULT_RETRY_SECONDS = 30.0


class SettingsError(ValueError):
    """A bad client setting; the message names the flag or variable it came from."""


@dataclass(frozen=True)
class ClientSettings:
    """Where the service is and how to talk to it. Raises SettingsError for impossible values."""

    address: str
    token: str | None = None
    tls: bool = False
    tls_root_certificates: Path | None = None
    tls_client_certificate: Path | None = None
    tls_client_key: Path | None = None
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS
    retry_seconds: float = DEFAULT_RETRY_SECONDS

    def __post_init__(self) -> None:
        if not self.address:
            raise SettingsError("address: empty; give HOST:PORT")
        _check_seconds(self.deadline_seconds, "deadline_seconds", zero_allowed=False)
        _check_seconds(self.retry_seconds, "retry_seconds", zero_allowed=True)
        if (self.tls_client_certificate is None) != (self.tls_client_key is None):
            raise SettingsError("tls_client_certificate and tls_client_key go together: give both or neither")

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.tls_root_certificates is not None or self.tls_client_certificate is not None


@dataclass(frozen=True)
class _Source:
    """One setting's flag and environment variable, spelled once for parsing and for messages."""

    flag: str
    variable: str
    dest: str


SERVICE = _Source("--service", "PBT_SERVICE", "service")
TOKEN = _Source("--token", "PBT_AUTH_TOKEN", "token")
TLS = _Source("--tls", "PBT_TLS", "tls")
TLS_CA = _Source("--tls-ca", "PBT_TLS_CA", "tls_ca")
TLS_CERT = _Source("--tls-cert", "PBT_TLS_CERT", "tls_cert")
TLS_KEY = _Source("--tls-key", "PBT_TLS_KEY", "tls_key")
DEADLINE = _Source("--deadline-seconds", "PBT_DEADLINE_SECONDS", "deadline_seconds")
RETRY = _Source("--service-retry-seconds", "PBT_SERVICE_RETRY_SECONDS", "service_retry_seconds")


def add_client_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                         *, retry_seconds: float = DEFAULT_RETRY_SECONDS) -> None:
    """Adds the connection flags. Values stay strings here: `client_settings` checks them, so a bad
    flag and a bad variable read the same way."""
    add = parser.add_argument
    add(SERVICE.flag, metavar="HOST:PORT", help=f"the service's address (env {SERVICE.variable})")
    add(TOKEN.flag, metavar="TOKEN", help=f"auth token; prefer env {TOKEN.variable}, flags show in `ps`")
    add(TLS.flag, action="store_true", default=None,
        help=f"TLS with the system's root certificates (env {TLS.variable}=1)")
    add(TLS_CA.flag, metavar="FILE", help=f"TLS with this root certificate, PEM (env {TLS_CA.variable})")
    add(TLS_CERT.flag, metavar="FILE", help=f"client certificate for mutual TLS, PEM (env {TLS_CERT.variable})")
    add(TLS_KEY.flag, metavar="FILE", help=f"client private key for mutual TLS, PEM (env {TLS_KEY.variable})")
    add(DEADLINE.flag, metavar="SECONDS",
        help=f"deadline of each call (default {DEFAULT_DEADLINE_SECONDS:g}; env {DEADLINE.variable})")
    add(RETRY.flag, metavar="SECONDS",
        help=f"keep retrying an unreachable service this long (default {retry_seconds:g}; env {RETRY.variable})")


def client_settings(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None = None,
    *,
    default_address: str | None = None,
    retry_seconds: float = DEFAULT_RETRY_SECONDS,
) -> ClientSettings:
    """The settings from parsed flags, then `environ` (os.environ by default), then the defaults.
    Raises SettingsError naming the flag or variable of a bad or missing value."""
    env = os.environ if environ is None else environ

    def pick(source: _Source) -> tuple[str | None, str]:
        value = getattr(args, source.dest, None)
        if value is not None:
            return str(value), source.flag
        value = env.get(source.variable) or None
        return value, source.variable

    address, _ = pick(SERVICE)
    address = address or default_address
    if not address:
        raise SettingsError(f"no service address: give {SERVICE.flag} HOST:PORT or set {SERVICE.variable}")
    tls_flag, tls_from = pick(TLS)
    return ClientSettings(
        address=address,
        token=pick(TOKEN)[0],
        tls=_boolean(tls_flag, tls_from),
        tls_root_certificates=_file(*pick(TLS_CA)),
        tls_client_certificate=_file(*pick(TLS_CERT)),
        tls_client_key=_file(*pick(TLS_KEY)),
        deadline_seconds=_seconds(*pick(DEADLINE), default=DEFAULT_DEADLINE_SECONDS, zero_allowed=False),
        retry_seconds=_seconds(*pick(RETRY), default=retry_seconds, zero_allowed=True),
    )


def settings_from_environment(
    environ: Mapping[str, str] | None = None, *, default_address: str | None = None
) -> ClientSettings:
    """The settings from `PBT_*` variables alone (a program without flags of its own). Raises
    SettingsError naming the variable of a bad or missing value.

    Example:
        with PbtClient(settings_from_environment()) as client: ...   # PBT_SERVICE, PBT_AUTH_TOKEN, PBT_TLS_*
    """
    return client_settings(argparse.Namespace(), environ, default_address=default_address)


def _boolean(text: str | None, source: str) -> bool:
    if text is None:
        return False
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{source}: expected 1 or 0, got {text!r}")


def _file(text: str | None, source: str) -> Path | None:
    if text is None:
        return None
    path = Path(text).expanduser()
    if not path.is_file():
        raise SettingsError(f"{source}: no such file: {text}")
    if not os.access(path, os.R_OK):
        raise SettingsError(f"{source}: cannot read {text}")
    return path


def _seconds(text: str | None, source: str, *, default: float, zero_allowed: bool) -> float:
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{source}: expected a number of seconds, got {text!r}") from None
    _check_seconds(value, source, zero_allowed=zero_allowed)
    return value


def _check_seconds(value: float, source: str, *, zero_allowed: bool) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_allowed):
        bound = ">= 0" if zero_allowed else "> 0"
        raise SettingsError(f"{source}: must be a finite number {bound}, got {value:g}")
