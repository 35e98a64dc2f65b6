"""`pbt-ray-workers`: N workers of a study as Ray actors, on a local Ray or an existing cluster,
each with the CPUs, GPUs, memory and custom resources it needs; Ray restarts a worker whose node
dies and it gets its trial back (its worker id is PREFIX-w<index>, the same after a restart).

Python mode only: the trainer and evaluator are functions named as `package.module:function`,
imported on each worker (from the working directory; on a cluster, ship the code with
--runtime-env '{"working_dir": "."}' or install it on the nodes).

    pbt-ray-workers --service pbt.example.com:50051 --study demo --num-workers 8 \\
        --ray-address ray://head:10001 --gpus-per-worker 1 --workdir /shared/runs \\
        --trainer-module mypkg.job:train --evaluator-module mypkg.job:evaluate

Exit codes: 0 when the study is done or a limit is reached, 1 when a worker stopped on an error,
2 for bad input (a message naming the flag) or when Ray is not installed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import grpc

from worker_client import runner
from worker_client.cli import WORKER_RETRY_SECONDS, _pattern, load_study_config
from worker_client.context import CHECKPOINT_PATTERN
from worker_client.identity import NAME
from worker_client.progress import ProgressPrinter
from worker_client.ray_launcher import RayLauncher, RayMissing, import_ray, worker_id_of
from worker_client.settings import SettingsError, add_client_arguments, client_settings
from worker_client.signals import stop_on_signals

PROG = "pbt-ray-workers"
log = logging.getLogger("worker_client.ray")


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (`pbt-ray-workers: error: --flag: ...`) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(runner.EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _number(text: str, kind: type[int] | type[float]) -> float:
    try:
        return kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def _count(text: str) -> int:
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _restarts(text: str) -> int:
    value = int(_number(text, int))
    if value < -1:
        raise argparse.ArgumentTypeError(f"-1 (always) or >= 0, got {text}")
    return value


def _amount(text: str) -> float:
    value = _number(text, float)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _positive(text: str) -> float:
    value = _number(text, float)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _resources(text: str) -> dict[str, float]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error.msg}): {text!r}") from None
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
            for k, v in value.items()):
        raise argparse.ArgumentTypeError(f"expected an object of resource names to amounts >= 0, "
                                         f'e.g. \'{{"TPU": 1}}\', got {text!r}')
    return {k: float(v) for k, v in value.items()}


def _object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _prefix(text: str) -> str:
    if not NAME.match(worker_id_of(text, 9999)):
        raise argparse.ArgumentTypeError(f"{text!r}: use letters, digits, '.', '_', '-' (at most 58)")
    return text


def _memory(text: str) -> int:
    """Bytes, or a number with a unit: 512M, 8G, 8GiB."""
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    stripped = text.strip().upper().removesuffix("B").removesuffix("I")
    number = stripped.rstrip("KMGT")
    try:
        value = float(number) * units[stripped[len(number):]]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"expected bytes or a size like 8G, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return int(value)


def parser() -> argparse.ArgumentParser:
    doc = __doc__ or ""
    root = _Parser(prog=PROG, usage="%(prog)s --service HOST:PORT --study NAME --num-workers N "
                   "--trainer-module MOD:FN --evaluator-module MOD:FN [options]",
                   description=doc.split("\n\n")[0], epilog="\n\n".join(doc.split("\n\n")[1:]),
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    env = os.environ.get
    add_client_arguments(root.add_argument_group("service"), retry_seconds=WORKER_RETRY_SECONDS)
    ray = root.add_argument_group("Ray")
    ray.add_argument("--ray-address", metavar="ADDRESS", default=None,
                     help="ray://HOST:10001 (Ray Client), auto (the cluster of this machine), local (a new local "
                     "Ray); default: RAY_ADDRESS or a running local cluster, else a new local Ray")
    ray.add_argument("--num-workers", type=_count, default=1, metavar="N", help="worker actors (default 1)")
    ray.add_argument("--cpus-per-worker", type=_amount, default=1.0, metavar="N", help="Ray CPUs each (default 1)")
    ray.add_argument("--gpus-per-worker", type=_amount, default=0.0, metavar="N",
                     help="Ray GPUs each, fractions allowed (default 0); Ray sets CUDA_VISIBLE_DEVICES")
    ray.add_argument("--memory-per-worker", type=_memory, default=None, metavar="SIZE",
                     help="memory Ray reserves for each worker, bytes or e.g. 8G")
    ray.add_argument("--resources", type=_resources, default=None, metavar="JSON",
                     help='custom Ray resources each worker needs, e.g. \'{"accelerator_type:A100": 1}\'')
    ray.add_argument("--max-restarts", type=_restarts, default=-1, metavar="N",
                     help="times a worker's actor is restarted after its process or node dies (default -1: always)")
    ray.add_argument("--worker-prefix", metavar="PREFIX", default=None, type=_prefix,
                     help="worker ids are PREFIX-w0, PREFIX-w1, ... (default ray-HOST); give each launcher of one "
                     "study its own")
    ray.add_argument("--runtime-env", type=_object, default=None, metavar="JSON",
                     help='Ray runtime environment of the workers, e.g. \'{"working_dir": "."}\' to ship the code')
    where = root.add_argument_group("study")
    where.add_argument("--study", default=env("PBT_STUDY"), help="study name (env PBT_STUDY)")
    where.add_argument("--create-study", metavar="FILE", type=Path,
                       help="create the study from this JSON StudyConfig (as pbt-worker) when it does not exist")
    code = root.add_argument_group("what to run")
    code.add_argument("--trainer-module", metavar="MOD:FN", help="trainer function (ctx) -> None")
    code.add_argument("--evaluator-module", metavar="MOD:FN", help="evaluator function (ctx, checkpoint) -> metrics")
    code.add_argument("--checkpoint-regex", type=_pattern, default=CHECKPOINT_PATTERN, metavar="REGEX",
                      help=r"checkpoint names, one group for the step (default 'ckpt-(\d+)')")
    code.add_argument("--settle-seconds", type=_amount, default=0.0, metavar="SECONDS",
                      help="evaluate a checkpoint once unchanged this long (default 0)")
    code.add_argument("--keep-checkpoints", type=_count, default=None, metavar="N",
                      help="delete evaluated checkpoints but the newest N (the final one is always kept)")
    code.add_argument("--collect-checkpoints", action="store_true",
                      help="after each trial, delete the study's checkpoints no trial can need any more")
    code.add_argument("--grace-seconds", type=_amount, default=10.0, metavar="SECONDS",
                      help="on Ctrl-C/SIGTERM, wait this long for the trainers before killing the actors (default 10)")
    run = root.add_argument_group("limits")
    run.add_argument("--workdir", type=Path, default=Path(env("PBT_WORKDIR", "pbt_runs")), metavar="DIR",
                     help="model directories, as every worker sees it: shared storage on a cluster (default pbt_runs)")
    run.add_argument("--max-trials", type=_count, metavar="N", help="stop after this many trials (per worker)")
    run.add_argument("--max-time", type=_positive, metavar="SECONDS",
                     help="stop after this long; running trials are stopped and handed back")
    run.add_argument("--heartbeat-seconds", type=_positive, default=30.0, metavar="SECONDS",
                     help="lease renewal (default 30)")
    run.add_argument("--poll-seconds", type=_positive, default=0.05, metavar="SECONDS",
                     help="checkpoint polling (default 0.05)")
    out = root.add_argument_group("output")
    out.add_argument("--quiet", action="store_true", help="no progress lines; warnings and errors only")
    out.add_argument("--log-level", default=None, choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                     help="DEBUG, INFO, WARNING, ERROR (default INFO, or WARNING with --quiet)")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `pbt-ray-workers`; returns the exit code."""
    ap = parser()
    args = ap.parse_args(sys.argv[1:] if argv is None else list(argv))
    if not args.study:
        ap.error("--study is required (or PBT_STUDY)")
    if not args.trainer_module:
        ap.error("--trainer-module MOD:FN is required")
    if not args.evaluator_module:
        ap.error("--evaluator-module MOD:FN is required")
    for flag, spec in (("--trainer-module", args.trainer_module), ("--evaluator-module", args.evaluator_module)):
        module, colon, function = spec.partition(":")
        if not module or not colon or not function:
            ap.error(f"{flag} {spec!r}: expected 'package.module:function'")
    try:
        client = client_settings(args, retry_seconds=WORKER_RETRY_SECONDS)
    except SettingsError as error:
        ap.error(str(error))
    try:
        study_config = load_study_config(args.create_study) if args.create_study is not None else None
    except ValueError as error:
        ap.error(str(error))
    try:
        import_ray()
    except RayMissing as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return runner.EXIT_USAGE
    level = args.log_level or ("WARNING" if args.quiet else "INFO")
    runner.configure_logging(args.quiet, level)
    try:
        launcher = RayLauncher(
            client, args.study, args.trainer_module, args.evaluator_module, args.num_workers,
            workdir=args.workdir, address=args.ray_address, num_cpus=args.cpus_per_worker,
            num_gpus=args.gpus_per_worker, memory=args.memory_per_worker, resources=args.resources,
            max_restarts=args.max_restarts, worker_prefix=args.worker_prefix, study_config=study_config,
            max_trials=args.max_trials, max_seconds=args.max_time, grace_seconds=args.grace_seconds,
            runtime_env=args.runtime_env, log_level=level, heartbeat_seconds=args.heartbeat_seconds,
            poll_seconds=args.poll_seconds, settle_seconds=args.settle_seconds,
            keep_checkpoints=args.keep_checkpoints, checkpoint_pattern=args.checkpoint_regex,
            collect_checkpoints=args.collect_checkpoints, progress=None if args.quiet else ProgressPrinter(),
        )
    except ValueError as error:  # the flags' types check what the launcher would refuse
        ap.error(str(error))
    try:
        launcher.check_study()
    except runner.UsageError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return runner.EXIT_USAGE
    except grpc.RpcError as error:
        print(f"{PROG}: {client.address}: {error.code().name}: {error.details()}", file=sys.stderr)
        return runner.EXIT_ERROR
    restore = stop_on_signals(launcher.shutdown, who="launcher", doing="stopping the workers' trials")
    try:
        try:
            launcher.start()
        except (ConnectionError, RuntimeError, ValueError) as error:
            print(f"{PROG}: --ray-address {args.ray_address or '(default)'}: cannot start or reach Ray: "
                  f"{str(error).strip().splitlines()[-1] if str(error).strip() else error!r}", file=sys.stderr)
            return runner.EXIT_ERROR
        try:
            result = launcher.wait()
        except KeyboardInterrupt:
            launcher.shutdown("launcher interrupted")
            result = launcher.wait()
    finally:
        restore()
        launcher.close()
    assert result is not None
    usage = next((w.usage_error for w in result.workers if w.usage_error), None)
    if usage is not None:
        print(f"{PROG}: {usage}", file=sys.stderr)
        return runner.EXIT_USAGE
    for error_line in result.errors:
        print(f"{PROG}: {error_line}", file=sys.stderr)
    log.info("%s", result.summary())
    return runner.EXIT_ERROR if result.errors else runner.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
