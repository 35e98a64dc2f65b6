"""SIGTERM and SIGINT as a request to stop cleanly: the first one calls `stop` (running trials are
stopped and handed back to the service), a second one kills at once (the default handlers)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)


def stop_on_signals(stop: Callable[[str], None], *, who: str, doing: str) -> Callable[[], None]:
    """Installs the handlers; returns a function that puts the previous ones back. Outside the main
    thread (where Python allows no handlers) it installs nothing. `who` names the receiver in the
    stop reason ("worker received SIGTERM"), `doing` says what stopping does, for the log line."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        log.warning("received %s: %s (again to kill at once)", name, doing)
        for s in previous:
            signal.signal(s, signal.SIG_DFL)
        stop(f"{who} received {name}")

    for s in previous:
        signal.signal(s, on_signal)

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)

    return restore
