"""An in-process service on a free port, for examples, benchmarks and tests.

Example:
    with LocalService("sqlite:///runs/demo.db") as service:
        client = PbtClient(service.address)
"""

from __future__ import annotations

from types import TracebackType

from pbt_service.controller import ServiceSettings
from pbt_service.server import RunningServer, ServerSettings, create_server


class LocalService:
    """Starts the real gRPC server on 127.0.0.1:<free port>; stops it on exit. It imports PB2's
    scikit-learn before serving (a second or two, once per process) rather than in a thread beside
    the host program's own imports."""

    def __init__(
        self,
        database_url: str,
        *,
        lease_seconds: float = 300.0,
        retry_after_seconds: float = 0.2,
        max_workers: int = 16,
    ) -> None:
        self.settings = ServerSettings(
            database_url=database_url,
            host="127.0.0.1",
            port=0,
            max_workers=max_workers,
            service=ServiceSettings(lease_seconds=lease_seconds, retry_after_seconds=retry_after_seconds),
        )
        self._running: RunningServer | None = None

    @property
    def address(self) -> str:
        if self._running is None:
            raise RuntimeError("LocalService is not started; use it as a context manager")
        return f"127.0.0.1:{self._running.port}"

    def __enter__(self) -> LocalService:
        self._running = create_server(self.settings, warm_up_in_background=False)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._running is not None:
            self._running.stop(grace=1.0)
            self._running = None
