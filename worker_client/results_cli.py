"""`pbt-results`: query a study — studies, trials, best trials, lineages, schedules, exports, plots —
and replay or clean it up.

Examples:
    pbt-results --service localhost:50051 studies
    PBT_AUTH_TOKEN=secret pbt-results --service pbt.example.org:443 --tls best digits
    pbt-results --service localhost:50051 best digits --top 5 --format json
    pbt-results --service localhost:50051 trials digits --status completed --sort accuracy --desc --limit 10
    pbt-results --service localhost:50051 trials digits --generation 3 --worker host-1 --format csv
    pbt-results --service localhost:50051 trial 123
    pbt-results --service localhost:50051 lineage 123
    pbt-results --service localhost:50051 export digits --out digits-export --format csv --format parquet
    pbt-results --service localhost:50051 plot digits --out digits-plots
    pbt-results --database-url sqlite:///runs/demo/pbt.db studies          # read-only, no service
    pbt-results --service localhost:50051 schedule 123 --save best-schedule.json
    pbt-results --service localhost:50051 plan 121 122 123 --save ensemble.json
    pbt-results replay ensemble.json --trainer examples.digits:train --evaluator examples.digits:evaluate --dry-run
    pbt-results replay best-schedule.json --trainer examples.digits:train --evaluator examples.digits:evaluate
    pbt-results --service localhost:50051 gc digits --dry-run
    pbt-results --service localhost:50051 gc digits --root /data/ckpt
    pbt-results --service localhost:50051 pause digits
    pbt-results --service localhost:50051 resume digits
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import grpc

from pbt_service.core.errors import NotFoundError
from pbt_service.core.lineage import CorruptLineageError, MissingTrialError, PlanSegment, ReplayPlan, replay_plan
from worker_client.client import PbtClient
from worker_client.context import Evaluator, Trainer
from worker_client.garbage_collection import collect_garbage, format_report
from worker_client.loading import load_callable
from worker_client.replay import ReplayError, SegmentResult, check_workdir, load_plan, replay, save_plan
from worker_client.results.commands import QUERY_COMMANDS, add_query_commands, run_query
from worker_client.results.schedules import format_schedule, format_value
from worker_client.results.source import (
    AccessDenied,
    ResultsSource,
    SourceUnavailable,
    add_source_arguments,
    open_source,
    source_settings,
)
from worker_client.results.study_results import Results

DEFAULT_SERVICE = "localhost:50051"
RESULTS_RETRY_SECONDS = 10.0
"""A query gives up on an unreachable service sooner than a worker does."""


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="pbt-results", description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[2:]), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_source_arguments(root, default_service=DEFAULT_SERVICE, retry_seconds=RESULTS_RETRY_SECONDS)
    commands = root.add_subparsers(dest="command", required=True)
    add_query_commands(commands)
    sched = commands.add_parser("schedule", help="a trial's lineage and hyperparameter schedule")
    sched.add_argument("trial_id", type=int)
    sched.add_argument("--save", type=Path, help="write the schedule as a replay plan (JSON)")
    plan = commands.add_parser("plan", help="the replay plan of final trials: their lineages, shared ancestors once")
    plan.add_argument("trial_ids", type=int, nargs="+", metavar="TRIAL_ID")
    plan.add_argument("--save", type=Path, help="write the plan as JSON for replay")
    gc = commands.add_parser(
        "gc", help="delete the checkpoints no trial can need any more (only inside the checkpoint roots)"
    )
    gc.add_argument("study")
    gc.add_argument("--root", action="append", default=[], metavar="DIR",
                    help="delete only inside DIR (repeatable; default: the study's checkpoint roots; "
                    "required when the study declares none)")
    gc.add_argument("--dry-run", action="store_true", help="list what would be deleted; decide and delete nothing")
    for verb, what in (("pause", "hand out no new trials (active ones may finish)"),
                       ("resume", "hand out trials again after a pause")):
        commands.add_parser(verb, help=what).add_argument("study")
    rep = commands.add_parser("replay", help="re-train along a saved plan or schedule (no service needed)")
    rep.add_argument("plan", type=Path, help="a file written by `plan --save` or `schedule --save`")
    rep.add_argument("--trainer", required=True, help="package.module:function")
    rep.add_argument("--evaluator", required=True, help="package.module:function")
    rep.add_argument("--workdir", type=Path, default=Path("replay"),
                     help="where the replayed models go; must not hold a replay yet (default: replay)")
    rep.add_argument("--dry-run", action="store_true",
                     help="print the plan and check the trainer, evaluator and workdir; train nothing")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `pbt-results`; returns the exit code: 2 for bad options or files (a malformed
    plan, a workdir already used), an unknown study or trial; 1 when the service refused the token
    or failed (the message names the status), an ancestor is missing, or a replayed segment wrote no
    checkpoint."""
    ap = parser()
    args = ap.parse_args(argv)
    settings = source_settings(ap, args, default_service=DEFAULT_SERVICE, retry_seconds=RESULTS_RETRY_SECONDS)
    if settings is None and args.command in SERVICE_ONLY:
        ap.error(f"{args.command} changes the study: it needs the service (--service), not --database-url")
    try:
        if args.command == "replay":
            return replay_command(args.plan, args.trainer, args.evaluator, args.workdir, dry_run=args.dry_run)
        if settings is None:
            results = Results(open_source(str(args.database_url)))
        elif args.command in SERVICE_ONLY:
            with PbtClient(settings) as client:
                return service_command(client, args)
        else:
            results = Results(open_source(settings))
        with results:
            if args.command in QUERY_COMMANDS:
                print(run_query(results, args))
            elif args.command == "plan":
                plan_command(results.source, args.trial_ids, args.save)
            else:
                schedule_command(results.source, args.trial_id, args.save)
        return 0
    except MissingTrialError as error:
        return _fail(str(error), 2 if error.ancestor_of is None else 1)
    except (CorruptLineageError, ReplayError) as error:
        return _fail(str(error), 1)
    except NotFoundError as error:
        return _fail(str(error), 2)
    except AccessDenied as error:
        return _fail(str(error), 1)
    except SourceUnavailable as error:
        return _fail(str(error), 1)
    except grpc.RpcError as error:
        hint = ""
        if error.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            hint = " (the service refused the token: give the right one with --token or PBT_AUTH_TOKEN)"
        code = 2 if error.code() == grpc.StatusCode.NOT_FOUND else 1
        where = settings.address if settings else args.database_url
        return _fail(f"{where}: {error.code().name}: {error.details()}{hint}", code)
    except (ValueError, FileExistsError, ImportError) as error:
        return _fail(str(error), 2)


SERVICE_ONLY = ("gc", "pause", "resume")


def service_command(client: PbtClient, args: argparse.Namespace) -> int:
    """The subcommands that change a study: garbage collection, pause and resume."""
    if args.command == "gc":
        print(format_report(collect_garbage(client, args.study, roots=args.root, dry_run=args.dry_run)))
    else:
        change = client.pause_study if args.command == "pause" else client.resume_study
        print(f"study {args.study}: {change(args.study).state.value}")
    return 0


def _fail(message: str, code: int) -> int:
    print(f"pbt-results: {message}", file=sys.stderr)
    return code


def schedule_command(source: ResultsSource, trial_id: int, save: Path | None) -> None:
    plan = replay_plan([trial_id], source.get_trial)
    print(format_schedule(list(plan.segments)))
    if save:
        save_plan(plan, save)
        print(f"saved to {save}")


def plan_command(source: ResultsSource, trial_ids: Sequence[int], save: Path | None) -> None:
    plan = replay_plan(trial_ids, source.get_trial)
    print(format_plan(plan))
    if save:
        save_plan(plan, save)
        print(f"saved to {save}")


def replay_command(plan_path: Path, trainer_spec: str, evaluator_spec: str, workdir: Path, *, dry_run: bool) -> int:
    """Loads and checks everything before training anything; prints a line as each segment ends."""
    plan = load_plan(plan_path)
    trainer = cast(Trainer, load_callable(trainer_spec, "--trainer"))
    evaluator = cast(Evaluator, load_callable(evaluator_spec, "--evaluator"))
    check_workdir(workdir)
    print(format_plan(plan))
    if dry_run:
        print(f"dry run: would train {len(plan.segments)} segments in {workdir}")
        return 0

    def report(segment: PlanSegment, result: SegmentResult) -> None:
        final = " (final)" if segment.trial_id in plan.finals else ""
        print(f"trial {result.trial_id}{final}: step {result.step}: {json.dumps(dict(result.metrics))}", flush=True)

    replay(plan, trainer, evaluator, workdir, on_segment=report)
    print(f"replayed {len(plan.segments)} segments in {workdir}")
    return 0


def format_plan(plan: ReplayPlan) -> str:
    """A table, one row per segment in training order, and how much sharing ancestors saves."""
    names = sorted({name for s in plan.segments for name in s.hparams})
    header = ["order", "trial", "gen", "steps", "from", *names]
    rows = [
        [str(order), str(s.trial_id), str(s.generation), f"{s.start_step}-{s.end_step}",
         "-" if s.warm_start_trial_id is None else str(s.warm_start_trial_id),
         *(format_value(s.hparams.get(n)) for n in names)]
        for order, s in enumerate(plan.segments, start=1)
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    table = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    chains = sum(len(plan.chain(final)) for final in plan.finals)
    finals = ", ".join(map(str, plan.finals))
    saving = f" ({chains} if each lineage trained alone)" if chains > len(plan.segments) else ""
    table.append(f"finals {finals}: {len(plan.segments)} segments to train{saving}")
    return "\n".join(table)


if __name__ == "__main__":
    sys.exit(main())
