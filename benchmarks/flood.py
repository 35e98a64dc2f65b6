"""One client flooding the service with oversized and malformed requests while 8 well-behaved
workers run: does their throughput hold (target: at least half of the baseline) and does none of
their requests fail?

A `pbt-service serve` process with tokens required and default limits (4 MiB messages, 32 streams
per connection, 256 concurrent RPCs, 16 RPC threads) on a fresh SQLite file (or a throwaway
PostgreSQL), a study without a budget, and phases of equal length on one clock:

* baseline: the workers alone (a spawned process, one thread and one connection per worker, the
  PBT loop over raw stubs with a study-scoped worker token: GetNewSuggestion, two
  ReportMeasurement, CompleteTrial, no training; no retries, every RpcError counted);
* flood: the workers plus one flooding client process, 64 threads as fast as the server answers,
  over 1 connection and over 8, with a valid token of its own (a worker token for every study) and
  with none, sending round-robin over all 15 RPCs bodies over 4 MiB, undecodable ones, random
  bytes, valid messages with bad fields and messages with a string just under 4 MiB
  (`benchmarks/load/flood_clients.py: flood_bodies`);
* flood alone: the flooder without workers, for the server CPU a refused request costs.

Per phase: worker cycles/s and its ratio to the baseline, cycle p50/p99, worker failed requests,
flood requests and their statuses, the server's CPU (cores), RSS and log volume, and the CPU of
the client processes and of the machine. Exit 1 when a worker request failed or a flood phase kept
less than half of the baseline's cycles/s.

    PYTHONPATH=. .venv/bin/python benchmarks/flood.py                     # about 2.5 minutes
    PYTHONPATH=. .venv/bin/python benchmarks/flood.py --seconds 5 --markdown /tmp/flood.md
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks.load` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.load.flood_clients import (  # noqa: E402
    ADMIN_TOKEN,
    KINDS,
    REFUSALS,
    STUDY,
    Outcome,
    Phase,
    PhaseResult,
    Variant,
    create_study,
    create_token,
    flood_server,
    run_schedule,
)
from benchmarks.load.system import BenchmarkError, Postgres, fresh_database, throwaway_postgres  # noqa: E402

TARGET_RATIO = 0.5


def phases(threads: int, kinds: tuple[str, ...]) -> list[Phase]:
    return [
        Phase("baseline", None, True),
        Phase("flood", Variant("valid", 1, threads, kinds), True),
        Phase("flood", Variant("valid", 8, threads, kinds), True),
        Phase("flood", Variant("none", 1, threads, kinds), True),
        Phase("flood", Variant("none", 8, threads, kinds), True),
        Phase("baseline", None, True),
        Phase("flood alone", Variant("valid", 8, threads, kinds), False),
        Phase("flood alone", Variant("none", 8, threads, kinds), False),
    ]


def codes_text(result: PhaseResult) -> str:
    if result.flood is None:
        return ""
    return ", ".join(f"{code} {n}" for code, n in result.flood.codes.most_common())


def table(outcome: Outcome, markdown: bool) -> list[str]:
    header = ["phase", "flooder", "cycles/s", "ratio", "p50 ms", "p99 ms", "worker fails", "flood req/s",
              "flood statuses", "server CPU", "ms CPU/flood req", "RSS MiB", "log KiB", "workers CPU",
              "flooder CPU", "machine busy"]  # fmt: skip
    rows = []
    for r in outcome.phases:
        flood_rate = r.flood.sent / r.seconds if r.flood else 0.0
        per_request = r.server_cpu * 1000 / r.flood.sent if r.flood and r.flood.sent and not r.phase.workers else None
        rows.append([
            r.phase.name, r.phase.variant.label if r.phase.variant else "-",
            f"{r.rate:.1f}" if r.phase.workers else "-",
            f"{outcome.ratio(r):.2f}" if r.phase.workers else "-",
            f"{r.latency_ms(0.5):.1f}" if r.phase.workers else "-",
            f"{r.latency_ms(0.99):.1f}" if r.phase.workers else "-",
            str(len(r.worker_errors)) if r.phase.workers else "-",
            f"{flood_rate:.0f}" if r.flood else "-",
            codes_text(r) or "-",
            f"{r.server_cpu / r.seconds:.2f}",
            f"{per_request:.2f}" if per_request is not None else "-",
            f"{r.rss_mb:.0f} (peak {r.hwm_mb:.0f})",
            f"{r.log_bytes / 1024:.0f}",
            f"{r.workers_cpu / r.seconds:.2f}",
            f"{r.flooder_cpu / r.seconds:.2f}",
            f"{r.busy:.0%}",
        ])  # fmt: skip
    if markdown:
        return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
            "| " + " | ".join(r) + " |" for r in rows
        ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in [header, *rows]]


def verdict(outcome: Outcome) -> tuple[bool, list[str]]:
    lines = []
    failed = outcome.worker_errors
    bad = [(r.phase.variant.label if r.phase.variant else "", call) for r in outcome.phases if r.flood
           for call in r.flood.bad]  # fmt: skip
    worst = outcome.worst_ratio
    ok = not failed and worst >= TARGET_RATIO
    lines.append(f"worst flood phase: {worst:.2f} of the baseline's cycles/s (target >= {TARGET_RATIO}): "
                 f"{'met' if worst >= TARGET_RATIO else 'MISSED'}")  # fmt: skip
    lines.append(
        f"well-behaved worker requests that failed: {len(failed)} (target 0): {'met' if not failed else 'MISSED'}"
    )
    for _when, name, rpc, code, details in failed[:10]:
        lines.append(f"  {name} {rpc}: {code} {details}")
    if bad:
        lines.append(f"flood requests with a status other than {', '.join(REFUSALS)}:")
        lines += [f"  [{label}] {call}" for label, call in bad[:10]]
    growth = max(r.rss_mb for r in outcome.phases) - outcome.rss_start_mb
    lines.append(f"server RSS: {outcome.rss_start_mb:.0f} MiB at the start, largest phase-end reading "
                 f"{outcome.rss_start_mb + growth:.0f} MiB")  # fmt: skip
    lines.append("VERDICT: " + ("PASS" if ok else "FAIL"))
    return ok, lines


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[tuple[str, Postgres | None]]:
    context = throwaway_postgres() if backend == "postgresql" else nullcontext(None)
    with context as postgres:
        yield fresh_database(backend, postgres, "flood", workdir), postgres


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--seconds", type=float, default=15.0, help="length of each phase (default %(default)s)")
    p.add_argument("--workers", type=int, default=8, help="well-behaved workers (default %(default)s)")
    p.add_argument("--threads", type=int, default=64, help="the flooder's calls in flight (default %(default)s)")
    p.add_argument(
        "--kinds",
        type=lambda text: tuple(text.split(",")),
        default=KINDS,
        help=f"the flood's kinds of body, comma-separated (default: all of {','.join(KINDS)})",
    )
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="an extra `pbt-service serve` argument, e.g. --serve-arg=--max-concurrent-rpcs=64",
    )
    p.add_argument(
        "--switch-interval",
        type=float,
        metavar="SECONDS",
        help="an experiment: start the server with this sys.setswitchinterval (Python's default 0.005)",
    )
    p.add_argument("--markdown", type=Path, help="also write the table as markdown to this file")
    p.add_argument("--keep", type=Path, help="keep the server log in this directory")
    args = p.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="pbt-flood-"))
    log = (args.keep or workdir) / "server.log"
    print(f"flood: {args.workers} workers, flooder {args.threads} threads, {args.seconds:g} s per phase, "
          f"{args.backend}, {os.cpu_count()} CPUs; server log {log}", flush=True)  # fmt: skip
    try:
        with (
            database(args.backend, workdir) as (url, postgres),
            flood_server(url, log, extra=args.serve_arg, switch_interval=args.switch_interval) as server,
        ):
            create_study(server.address, ADMIN_TOKEN)
            worker_token = create_token(url, "flood-bench-workers", "worker", STUDY)
            tokens = {"valid": create_token(url, "flood-bench-flooder", "worker"), "none": None}
            schedule = phases(args.threads, args.kinds)
            database_pid = postgres.postmaster() if postgres else None
            outcome = run_schedule(server, tokens, worker_token, schedule, args.seconds, args.workers,
                                   database_pid=database_pid)  # fmt: skip
            server.check_alive()
    except BenchmarkError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    command = "PYTHONPATH=. .venv/bin/python benchmarks/flood.py " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    print()
    print("\n".join(table(outcome, markdown=False)))
    print()
    for r in outcome.phases:
        if r.flood:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(r.flood.by_kind.items()))
            print(f"{r.phase.name} [{r.phase.variant.label if r.phase.variant else ''}]: {kinds}")
    ok, lines = verdict(outcome)
    print()
    print("\n".join(lines))
    if args.markdown:
        text = [f"`{command.strip()}`", "", *table(outcome, markdown=True), "", *lines, ""]
        args.markdown.write_text("\n".join(text))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
