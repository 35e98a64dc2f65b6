"""Every setting of `pbt-service serve`, spelled once: its flag, its environment variable, its
default and its meaning. The command line, the environment and the settings table of
docs/operations.md all come from `SERVE_OPTIONS` (a test keeps the doc in step), so a container can
be configured with variables alone and a person with flags alone; a flag wins over its variable.

A bad value, from a flag or a variable, is refused at start with exit 2 and a message naming the
flag or variable, before anything is bound or opened.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_DATABASE = "sqlite:///pbt.db"
DEFAULT_HOST = "127.0.0.1"


class OptionError(ValueError):
    """A bad setting; the message names the flag or variable it came from."""


def positive_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a finite number > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a finite number >= 0, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"must be an integer > 0, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"must be an integer >= 0, got {text}")
    return value


def port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(f"must be a port number 0..65535, got {text}")
    return value


def readable_file(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise ValueError(f"no such file: {text}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"cannot read {text}")
    return path


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected 1 or 0, got {text!r}")


def choice(*values: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in values:
            raise ValueError(f"expected one of {', '.join(values)}, got {text!r}")
        return text

    return parse


@dataclass(frozen=True)
class Option:
    """One setting: `parse` turns the flag's or variable's text into the value (raising
    ValueError with a reason); `default` is already parsed (None: unset). A `switch` is a flag
    without a value (`--require-token`) whose variable takes 1 or 0."""

    flag: str
    variable: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str
    metavar: str | None = None
    switch: bool = False

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def shown_default(self) -> str:
        if self.default is None:
            return "unset"
        if self.switch:
            return "off" if not self.default else "on"
        return str(self.default)


SERVE_OPTIONS: tuple[Option, ...] = (
    Option("--database-url", "PBT_DATABASE_URL", DEFAULT_DATABASE,
           "SQLAlchemy URL of the database (SQLite file or PostgreSQL)", metavar="URL"),
    Option("--host", "PBT_HOST", DEFAULT_HOST,
           "address to bind; 0.0.0.0 or [::] serves every interface (then require tokens)", metavar="ADDRESS"),
    Option("--port", "PBT_PORT", 50051, "gRPC port to bind; 0 picks a free one", port, "PORT"),
    Option("--max-workers", "PBT_MAX_WORKERS", 16, "RPC threads, and database connections", positive_int, "N"),
    Option("--lease-seconds", "PBT_LEASE_SECONDS", 300.0,
           "stop an active trial whose worker is silent this long", positive_float, "SECONDS"),
    Option("--retry-after-seconds", "PBT_RETRY_AFTER_SECONDS", 1.0,
           "wait a worker is told when nothing can be suggested", positive_float, "SECONDS"),
    Option("--grace-seconds", "PBT_GRACE_SECONDS", 10.0,
           "on SIGTERM, let calls in flight finish this long", non_negative_float, "SECONDS"),
    Option("--log-level", "PBT_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR",
           choice("DEBUG", "INFO", "WARNING", "ERROR"), "LEVEL"),
    Option("--log-format", "PBT_LOG_FORMAT", "text",
           "text, or json: one JSON object a line with request, study and trial ids", choice("text", "json"),
           "FORMAT"),
    Option("--require-token", "PBT_REQUIRE_TOKEN", False,
           "refuse calls without a valid token even when PBT_AUTH_TOKEN is unset (tokens from "
           "`pbt-service token create`)", boolean, switch=True),
    Option("--tls-cert", "PBT_TLS_CERT", None, "the server's certificate chain (PEM): serve TLS",
           readable_file, "FILE"),
    Option("--tls-key", "PBT_TLS_KEY", None, "the server's private key (PEM), with --tls-cert", readable_file, "FILE"),
    Option("--tls-client-ca", "PBT_TLS_CLIENT_CA", None,
           "require client certificates signed by this CA (PEM): mutual TLS", readable_file, "FILE"),
    Option("--metrics-port", "PBT_METRICS_PORT", None,
           "serve Prometheus metrics over HTTP on this port (unset: no metrics server)", port, "PORT"),
    Option("--metrics-host", "PBT_METRICS_HOST", DEFAULT_HOST, "address the metrics server binds", metavar="ADDRESS"),
    Option("--health-check-seconds", "PBT_HEALTH_CHECK_SECONDS", 2.0,
           "how often the database is probed; health is NOT_SERVING while it is unreachable",
           positive_float, "SECONDS"),
    Option("--max-message-bytes", "PBT_MAX_MESSAGE_BYTES", 4 * 1024 * 1024,
           "largest request accepted; a larger one gets RESOURCE_EXHAUSTED", positive_int, "BYTES"),
    Option("--max-concurrent-rpcs", "PBT_MAX_CONCURRENT_RPCS", 1000,
           "calls in flight or queued on this replica; beyond it RESOURCE_EXHAUSTED", positive_int, "N"),
    Option("--max-streams-per-connection", "PBT_MAX_STREAMS_PER_CONNECTION", 100,
           "calls one client connection may have in flight; more wait in the client", positive_int, "N"),
)
"""The `pbt-service serve` settings. `PBT_AUTH_TOKEN` (the admin token) is read from the
environment only, so that it never shows in `ps`."""


def add_options(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """Adds each option as a flag whose value stays text (or None): `resolve` parses flag and
    variable alike, so both are refused with the same message."""
    for option in options:
        help_text = f"{option.help} (env {option.variable}; default {option.shown_default})".replace("%", "%%")
        if option.switch:
            parser.add_argument(option.flag, dest=option.dest, action="store_const", const="1", default=None,
                                help=help_text)
        else:
            parser.add_argument(option.flag, dest=option.dest, metavar=option.metavar, default=None, help=help_text)


def resolve(
    args: argparse.Namespace, options: Sequence[Option], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Each option's value by dest: the flag, else the variable, else the default. Raises
    OptionError naming the flag or variable of a bad value."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for option in options:
        text = getattr(args, option.dest, None)
        source = option.flag
        if text is None:
            text = env.get(option.variable) or None
            source = option.variable
        if text is None:
            values[option.dest] = option.default
            continue
        try:
            values[option.dest] = option.parse(text)
        except ValueError as error:
            reason = str(error) if option.parse is not int and "invalid literal" not in str(error) else ""
            raise OptionError(f"{source}: {reason or f'not a valid value: {text!r}'}") from None
    return values
