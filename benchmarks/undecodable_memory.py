"""Server memory (RSS) and log lines over many requests whose body is not a valid protobuf message.

Each server runs in a process of its own on loopback; the client sends `--requests` undecodable
bodies (truncated fields, an invalid wire type, an overlong varint) spread over every RPC of
`pbt_service.api.v1.PbtService`, `--in-flight` at a time, after a warm-up, and samples the
server's VmRSS from /proc (Linux only). The servers:

* `bare`: grpcio alone with the generated handlers and no servicer logic; what any grpcio server
  does with such a body (and what `pbt-service serve` did before `pbt_service.decoding`).
* `guarded`: the same plus `pbt_service.decoding.DecodeGuard`, nothing else.
* `service`: `pbt-service serve` on a fresh SQLite file, as deployed.

    PYTHONPATH=. python benchmarks/undecodable_memory.py --requests 20000
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from pbt_service.api.v1 import pbt_service_pb2, pbt_service_pb2_grpc

SERVICE = pbt_service_pb2.DESCRIPTOR.services_by_name["PbtService"]
SERVERS = ("bare", "guarded", "service")
UNDECODABLE_BODIES = (
    b"\x0a\xff",  # field 1, length-delimited, length truncated
    b"\x0a\x05ab",  # field 1, length 5, two bytes follow
    b"\x0f",  # wire type 7 does not exist
    b"\x08" + b"\x80" * 10 + b"\x01",  # an 11-byte varint
)


@dataclass(frozen=True)
class MemoryRun:
    server: str
    requests: int
    codes: dict[str, int]
    rss_start_mb: float
    rss_end_mb: float
    log_lines: int
    tracebacks: int
    seconds: float

    @property
    def kb_per_request(self) -> float:
        return (self.rss_end_mb - self.rss_start_mb) * 1024 / self.requests


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_child(kind: str, port: int) -> None:
    """The `bare` and `guarded` servers: generated handlers, no storage, until killed."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    interceptors: list[grpc.ServerInterceptor] = []
    if kind == "guarded":
        from pbt_service.decoding import DecodeGuard

        interceptors.append(DecodeGuard())
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), interceptors=interceptors)
    unimplemented: Any = pbt_service_pb2_grpc.PbtServiceServicer  # answers UNIMPLEMENTED; never reached here
    pbt_service_pb2_grpc.add_PbtServiceServicer_to_server(unimplemented(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def start_server(kind: str, port: int, folder: Path, log: Any) -> subprocess.Popen[bytes]:
    if kind == "service":
        command = [sys.executable, "-m", "pbt_service.cli", "serve", "--database-url",
                   f"sqlite:///{folder / 'pbt.db'}", "--host", "127.0.0.1", "--port", str(port)]
    else:
        command = [sys.executable, __file__, "--child", kind, "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    env.pop("PBT_AUTH_TOKEN", None)
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def send(channel: grpc.Channel, count: int, in_flight: int, on_progress: Callable[[int], None]) -> Counter[str]:
    """Sends `count` undecodable bodies round-robin over the RPCs; the status codes seen, by name."""
    calls = [channel.unary_unary(f"/{SERVICE.full_name}/{m.name}", _registered_method=False) for m in SERVICE.methods]
    codes: Counter[str] = Counter()
    slots = threading.BoundedSemaphore(in_flight)
    lock = threading.Lock()

    def settle(call: Any) -> None:
        error = call.exception()
        with lock:
            codes["OK" if error is None else error.code().name] += 1
        slots.release()

    for i in range(count):
        slots.acquire()
        body = UNDECODABLE_BODIES[i % len(UNDECODABLE_BODIES)]
        calls[i % len(calls)].future(body, timeout=30).add_done_callback(settle)
        if (i + 1) % 1000 == 0:
            on_progress(i + 1)
    for _ in range(in_flight):
        slots.acquire()
    return codes


def measure(kind: str, requests: int, in_flight: int, warmup: int) -> MemoryRun:
    with tempfile.TemporaryDirectory(prefix="pbt-undecodable-") as name:
        folder = Path(name)
        port = free_port()
        with open(folder / "server.log", "wb") as log:
            process = start_server(kind, port, folder, log)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                grpc.channel_ready_future(channel).result(timeout=60)
                send(channel, warmup, in_flight, lambda n: None)
                time.sleep(0.5)
                start = rss_mb(process.pid)
                log_start = (folder / "server.log").stat().st_size
                started = time.monotonic()
                codes = send(channel, requests, in_flight,
                             lambda n: print(f"  {kind}: {n} requests, RSS {rss_mb(process.pid):.1f} MiB", flush=True))
                seconds = time.monotonic() - started
                time.sleep(0.5)
                end = rss_mb(process.pid)
        finally:
            process.kill()
            process.wait()
        with open(folder / "server.log", "rb") as log_file:
            log_file.seek(log_start)
            text = log_file.read().decode(errors="replace")
    return MemoryRun(kind, requests, dict(codes), start, end, len(text.splitlines()),
                     text.count("Traceback (most recent call last)"), seconds)  # fmt: skip


def table(runs: Sequence[MemoryRun], warmup: int) -> str:
    rows = [
        f"grpcio {grpc.__version__}, Python {sys.version.split()[0]}; RSS after {warmup} warm-up requests and "
        "after the measured ones; log lines and tracebacks written during the measured ones",
        "",
        "| server | requests | statuses | RSS start MiB | RSS end MiB | KiB/request | log lines | tracebacks | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        codes = ", ".join(f"{code} {n}" for code, n in sorted(r.codes.items()))
        rows.append(f"| {r.server} | {r.requests} | {codes} | {r.rss_start_mb:.1f} | {r.rss_end_mb:.1f} | "
                    f"{r.kb_per_request:.2f} | {r.log_lines} | {r.tracebacks} | {r.seconds:.1f} |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--in-flight", type=int, default=16)
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--child", choices=SERVERS[:2], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(args.child, args.port)
        return 0
    runs = [measure(kind, args.requests, args.in_flight, args.warmup) for kind in args.servers]
    print(table(runs, args.warmup))
    return 0


if __name__ == "__main__":
    sys.exit(main())
