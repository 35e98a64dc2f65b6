"""`pbt-results`: read a study back — best trials, a trial's lineage and schedule, replay.

Examples:
    pbt-results --service localhost:50051 studies
    PBT_AUTH_TOKEN=secret pbt-results --service pbt.example.org:443 --tls best digits
    pbt-results --service localhost:50051 best digits --top 5
    pbt-results --service localhost:50051 schedule 123 --save best-schedule.json
    pbt-results replay best-schedule.json --trainer examples.digits:train --evaluator examples.digits:evaluate
    pbt-results --service localhost:50051 gc digits --dry-run
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import grpc

from worker_client.client import PbtClient
from worker_client.context import Evaluator, Trainer
from worker_client.garbage_collection import collect_garbage
from worker_client.loading import load_callable
from worker_client.replay import load_schedule, replay, save_schedule
from worker_client.results import best, format_schedule, trial_schedule
from worker_client.settings import SettingsError, add_client_arguments, client_settings

DEFAULT_SERVICE = "localhost:50051"
RESULTS_RETRY_SECONDS = 10.0
"""A query gives up on an unreachable service sooner than a worker does."""


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="pbt-results", description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[2:]), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_client_arguments(root.add_argument_group(f"service (default {DEFAULT_SERVICE})"),
                         retry_seconds=RESULTS_RETRY_SECONDS)
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser("studies", help="list studies")
    top = commands.add_parser("best", help="the best completed trials of a study")
    top.add_argument("study")
    top.add_argument("--top", type=int, default=5)
    sched = commands.add_parser("schedule", help="a trial's lineage and hyperparameter schedule")
    sched.add_argument("trial_id", type=int)
    sched.add_argument("--save", type=Path, help="write the schedule as JSON for replay")
    gc = commands.add_parser("gc", help="delete evaluated checkpoints no trial can need (keeps finals)")
    gc.add_argument("study")
    gc.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    rep = commands.add_parser("replay", help="re-train along a saved schedule (no service needed)")
    rep.add_argument("schedule", type=Path)
    rep.add_argument("--trainer", required=True, help="package.module:function")
    rep.add_argument("--evaluator", required=True, help="package.module:function")
    rep.add_argument("--workdir", type=Path, default=Path("replay"))
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `pbt-results`; returns the exit code: 1 when the service refused or failed
    (the message names the status), 2 for bad options or files."""
    ap = parser()
    args = ap.parse_args(argv)
    try:
        settings = client_settings(args, default_address=DEFAULT_SERVICE, retry_seconds=RESULTS_RETRY_SECONDS)
    except SettingsError as error:
        ap.error(str(error))
    try:
        if args.command == "replay":
            trainer = cast(Trainer, load_callable(args.trainer, "--trainer"))
            evaluator = cast(Evaluator, load_callable(args.evaluator, "--evaluator"))
            results = replay(load_schedule(args.schedule), trainer, evaluator, args.workdir)
            for step, metrics in results:
                print(f"step {step}: {json.dumps(metrics)}")
            return 0
        with PbtClient(settings) as client:
            if args.command == "studies":
                for study in client.list_studies():
                    print(f"{study.name}\t{study.state.value}\t{study.trial_count} trials")
            elif args.command == "gc":
                report = collect_garbage(client, args.study, dry_run=args.dry_run)
                verb = "would delete" if args.dry_run else "deleted"
                print(f"{verb} {len(report.deleted)} checkpoints; kept {report.kept_final} final ones; "
                      f"{report.missing} already gone")
            elif args.command == "best":
                study = client.get_study(args.study)
                for trial in best(client, study, args.top):
                    metrics = trial.final_measurement.metrics if trial.final_measurement else {}
                    print(f"trial {trial.id}\tgeneration {trial.generation}\t{json.dumps(metrics)}\t"
                          f"{json.dumps(dict(trial.hparams))}")
            else:
                segments = trial_schedule(client, client.get_trial(args.trial_id))
                print(format_schedule(segments))
                if args.save:
                    save_schedule(segments, args.save)
                    print(f"saved to {args.save}")
        return 0
    except grpc.RpcError as error:
        hint = ""
        if error.code() == grpc.StatusCode.UNAUTHENTICATED:
            hint = " (give the service's token with --token or PBT_AUTH_TOKEN)"
        print(f"pbt-results: {settings.address}: {error.code().name}: {error.details()}{hint}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"pbt-results: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
