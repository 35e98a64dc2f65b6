"""The service's own settings, parsed once by the command line and passed down."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceSettings:
    """`lease_seconds`: an active trial whose worker is silent this long is stopped and its
    reproduction handed back. `retry_after_seconds`: what a worker is told to wait when nothing
    can be suggested yet."""

    lease_seconds: float = 300.0
    retry_after_seconds: float = 1.0
