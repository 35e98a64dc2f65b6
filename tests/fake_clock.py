"""A settable clock for the service and the controller, so leases are tested without sleeping."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


class FakeClock:
    """A settable clock so lease expiry is tested without sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
