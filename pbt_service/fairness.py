"""Fair turns on the RPC threads: a client that floods the server with bad requests waits behind
everyone else instead of taking the server's one Python interpreter from them.

grpcio hands every call to one thread pool, first come first served, and a Python server has one
interpreter's worth of CPU: a client with 64 calls in flight gets 64 turns for every turn of a
worker with one. Rejecting a bad call is cheap but not free (about 1 ms of the server's CPU), so
a client sending nothing but bad calls, as fast as it can, slowed well-behaved workers to a quarter
of their throughput (docs/security.md, "One client flooding the server"). This module replaces the
pool:

- `FairExecutor` keeps a queue per client and serves clients in turn. A client whose recent calls
  were mostly refused (`ClientScores`: INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED,
  RESOURCE_EXHAUSTED, UNIMPLEMENTED) is *demoted*: its calls run only when no other client's call
  is waiting, all demoted clients together run at most one call at a time and at most
  `demoted_per_second` calls a second. Its calls are still answered, later (or meet their
  deadline); it recovers as soon as its calls succeed again.
- `ScoringInterceptor` records each call's outcome for its client.

A client is its token when it sends one (workers sharing a token are one client, and are never
demoted for calls that succeed), else its connection (`context.peer()`). The executor reads the
client of a queued call from grpcio's call event (its `invocation_metadata` and `call.peer()`),
before any of our code runs for it; a call it cannot place runs as "unknown", in turn like the
others. tests/service/test_fairness.py checks that the placement works on the installed grpcio.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc

from pbt_service.handlers import Behavior, WrappedHandlers, rebuilt

UNKNOWN = "unknown"
REFUSED = frozenset({
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNIMPLEMENTED,
})  # fmt: skip
"""Outcomes that say the client sent what no correct client sends. NOT_FOUND and
FAILED_PRECONDITION are not among them: workers meet them in normal operation (a study not created
yet, a lease that lapsed)."""


def client_key(metadata: Sequence[tuple[str, Any]] | None, peer: str) -> str:
    """The client a call belongs to: a digest of its bearer token, else its connection."""
    for key, value in metadata or ():
        if key == "authorization":
            raw = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")
            return "token:" + hashlib.sha256(raw).hexdigest()[:16]
    return "peer:" + peer


def _event_key(args: Sequence[Any]) -> str:
    """The client of a call grpcio submits to the pool: its call event is among the arguments."""
    for arg in args:
        metadata = getattr(arg, "invocation_metadata", None)
        call = getattr(arg, "call", None)
        if metadata is not None and call is not None and hasattr(call, "peer"):
            peer = call.peer()
            return client_key(metadata, peer.decode("utf-8", "replace") if isinstance(peer, bytes) else str(peer))
    return UNKNOWN


@dataclass
class _Score:
    bad: float = 0.0
    calls: int = 0


class ClientScores:
    """An exponentially weighted share of refused calls per client (the last ~`window` calls). A
    client is demoted once `min_calls` calls are in and more than `threshold` were refused. At
    most `max_clients` are remembered (the oldest entry goes first)."""

    def __init__(self, window: int = 20, threshold: float = 0.5, min_calls: int = 8, max_clients: int = 10_000) -> None:
        self._alpha = 1.0 / window
        self._threshold = threshold
        self._min_calls = min_calls
        self._max_clients = max_clients
        self._scores: dict[str, _Score] = {}
        self._lock = threading.Lock()

    def record(self, key: str, refused: bool) -> None:
        with self._lock:
            score = self._scores.pop(key, None) or _Score()
            value = 1.0 if refused else 0.0
            # The first call sets the share, so a client refused from its first call is judged
            # after `min_calls`, not after the average has climbed from zero.
            score.bad = value if score.calls == 0 else score.bad + self._alpha * (value - score.bad)
            score.calls += 1
            self._scores[key] = score  # most recent last
            if len(self._scores) > self._max_clients:
                self._scores.pop(next(iter(self._scores)))

    def demoted(self, key: str) -> bool:
        with self._lock:
            score = self._scores.get(key)
            return score is not None and score.calls >= self._min_calls and score.bad > self._threshold


class ScoringInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Records every unary-response call's outcome in `scores` under its client."""

    def __init__(self, scores: ClientScores) -> None:
        self._scores = scores
        self._handlers = WrappedHandlers()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.response_streaming:
            return handler
        method = handler_call_details.method
        return self._handlers.get(method, handler, lambda: rebuilt(handler, self._scored))

    def _scored(self, behavior: Behavior) -> Behavior:
        def scored(request: Any, context: grpc.ServicerContext) -> Any:
            refused = True
            try:
                reply = behavior(request, context)
                refused = context.code() in REFUSED
                return reply
            except BaseException:
                refused = context.code() in REFUSED
                raise
            finally:
                self._scores.record(client_key(context.invocation_metadata(), context.peer()), refused)

        return scored


@dataclass
class _Task:
    future: futures.Future[Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class FairExecutor(futures.Executor):
    """A thread pool that serves clients in turn, demoted ones last (see the module's docstring).

    Clients with waiting calls form a ring; a free thread takes the next client of the ring that
    is not demoted, runs its oldest call, and puts the client back at the end of the ring if it has
    more. Demoted clients are served only when no one else waits, one call at a time in all.
    """

    def __init__(
        self,
        max_workers: int,
        scores: ClientScores,
        *,
        thread_name_prefix: str = "pbt-rpc",
        demoted_running: int = 1,
        demoted_per_second: float = 50.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._scores = scores
        self._demoted_running = demoted_running
        self._demoted_gap = 1.0 / demoted_per_second
        self._next_demoted = 0.0
        self._clock = clock
        self._queues: dict[str, deque[_Task]] = {}
        self._ring: deque[str] = deque()
        self._demoted_now = 0
        self._changed = threading.Condition()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{thread_name_prefix}_{i}", daemon=True)
            for i in range(max_workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future[Any]:
        task = _Task(futures.Future(), fn, args, kwargs)
        key = _event_key(args)
        with self._changed:
            if self._stopping:
                raise RuntimeError("cannot schedule new calls after shutdown")
            queue = self._queues.get(key)
            if queue is None:
                self._queues[key] = queue = deque()
                self._ring.append(key)
            queue.append(task)
            self._changed.notify()
        return task.future

    def _next(self) -> tuple[_Task, bool] | float | None:
        """The next task to run and whether its client is demoted; else how long until a demoted
        client's call may run, or None when nothing waits. Called with the lock held."""
        demoted_first: str | None = None
        for _ in range(len(self._ring)):
            key = self._ring.popleft()
            if self._scores.demoted(key):
                self._ring.append(key)
                if demoted_first is None:
                    demoted_first = key
                continue
            return self._take(key), False
        if demoted_first is None or self._demoted_now >= self._demoted_running:
            return None
        now = self._clock()
        if now < self._next_demoted:
            return self._next_demoted - now
        self._next_demoted = now + self._demoted_gap
        self._ring.remove(demoted_first)
        return self._take(demoted_first), True

    def _take(self, key: str) -> _Task:
        queue = self._queues[key]
        task = queue.popleft()
        if queue:
            self._ring.append(key)
        else:
            del self._queues[key]
        return task

    def _work(self) -> None:
        while True:
            with self._changed:
                picked = self._next()
                while not isinstance(picked, tuple):
                    if self._stopping and not self._queues:
                        return
                    self._changed.wait(picked)
                    picked = self._next()
                task, demoted = picked
                if demoted:
                    self._demoted_now += 1
            try:
                if task.future.set_running_or_notify_cancel():
                    try:
                        task.future.set_result(task.fn(*task.args, **task.kwargs))
                    except BaseException as error:  # noqa: BLE001 - handed to the future, as ThreadPoolExecutor does
                        task.future.set_exception(error)
            finally:
                # Drop the call at once, as ThreadPoolExecutor does: grpc-core frees a call's
                # HTTP/2 stream only when its last Python reference goes, and a connection may
                # hold only `max_streams_per_connection` of them.
                del task, picked
                if demoted:
                    with self._changed:
                        self._demoted_now -= 1
                        self._changed.notify()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._changed:
            self._stopping = True
            if cancel_futures:
                for queue in self._queues.values():
                    for task in queue:
                        task.future.cancel()
                self._queues.clear()
                self._ring.clear()
            self._changed.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()
