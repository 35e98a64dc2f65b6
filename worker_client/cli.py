"""`pbt-worker`: run a training script (command mode) or Python functions (Python mode) as PBT
workers of a study.

Command mode, for scripts that must not change; the trial is filled into the command line:
    pbt-worker --service localhost:50051 --study demo \\
        --evaluator "python eval.py --checkpoint {checkpoint}" \\
        -- python train.py --lr {lr} --init {warm_start} --out {model_dir}

Python mode, for a training function and an evaluation function:
    pbt-worker --service localhost:50051 --study demo \\
        --trainer-module mypkg.job:train --evaluator-module mypkg.job:evaluate

Placeholders: every hparam of the study, and {warm_start} {model_dir} {trial_id} {study}
{generation} {steps} {hparams_json} {worker_id}; the evaluator also gets {checkpoint} {step}.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from google.protobuf import json_format

from pbt_service import converters
from pbt_service.api.v1 import study_pb2
from pbt_service.core.types import StudyConfig
from worker_client import runner
from worker_client.command import CommandEvaluator, CommandTrainer, check_executable
from worker_client.context import CHECKPOINT_PATTERN, Evaluator, Trainer
from worker_client.loading import load_callable
from worker_client.settings import SettingsError, add_client_arguments, client_settings
from worker_client.template import RESERVED, CommandTemplate

COMMAND_SETTLE_SECONDS = 0.5
WORKER_RETRY_SECONDS = 300.0
"""A worker rides out a service outage this long by default (a query command gives up sooner)."""


@dataclass(frozen=True)
class PythonJob:
    """What a `Job` script runs in place of a command: its functions and, optionally, the config
    of the study to create."""

    train: Trainer | None
    evaluate: Evaluator | None
    study_config: StudyConfig | None = None


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _pattern(text: str) -> re.Pattern[str]:
    try:
        pattern = re.compile(f"^(?:{text})$")
    except re.error as error:
        raise argparse.ArgumentTypeError(f"not a regular expression: {error}") from None
    if pattern.groups != 1:
        example = r"'model-(\d+)\.pt'"
        raise argparse.ArgumentTypeError(f"{text!r} needs exactly one group, the step, e.g. {example}")
    return pattern


def parser(python_job: bool = False) -> argparse.ArgumentParser:
    usage = "%(prog)s --service HOST:PORT --study NAME [options]"
    if not python_job:
        usage += " [-- COMMAND ...]"
    root = argparse.ArgumentParser(
        prog="pbt-worker" if not python_job else None,
        usage=usage,
        description=(__doc__ or "").split("\n\n")[0],
        epilog=None if python_job else "\n\n".join((__doc__ or "").split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    env = os.environ.get
    add_client_arguments(root.add_argument_group("service"), retry_seconds=WORKER_RETRY_SECONDS)
    where = root.add_argument_group("study")
    where.add_argument("--study", default=env("PBT_STUDY"), help="study name (env PBT_STUDY)")
    where.add_argument("--create-study", metavar="FILE", type=Path,
                       help="create the study from this JSON StudyConfig (proto3 JSON of "
                       "pbt_service.api.v1.StudyConfig, e.g. examples/legacy/study.json) when it does not exist")
    code = root.add_argument_group("what to run")
    if not python_job:
        code.add_argument("--trainer-module", metavar="MOD:FN",
                          help="Python mode: trainer function (ctx) -> None")
        code.add_argument("--evaluator", metavar="COMMAND",
                          help="evaluator command; prints a JSON object of metrics on its last line")
    code.add_argument("--evaluator-module", metavar="MOD:FN",
                      help="evaluator function (ctx, checkpoint) -> metrics")
    code.add_argument("--checkpoint-regex", type=_pattern, default=CHECKPOINT_PATTERN, metavar="REGEX",
                      help=r"checkpoint names, one group for the step (default 'ckpt-(\d+)')")
    code.add_argument("--settle-seconds", type=float, default=None, metavar="SECONDS",
                      help="evaluate a checkpoint once unchanged this long (default: 0.5 in command mode, "
                      "0 in Python mode, which writes atomically)")
    code.add_argument("--keep-checkpoints", type=_count, default=None, metavar="N",
                      help="delete evaluated checkpoints but the newest N (the final one is always kept)")
    code.add_argument("--collect-checkpoints", action="store_true",
                      help="after each trial, delete the study's checkpoints that no trial can need any more "
                      "(only inside the study's checkpoint roots, which it must declare)")
    code.add_argument("--show-output", action="store_true", help="echo the trainer's output to stderr")
    code.add_argument("--grace-seconds", type=float, default=10.0, metavar="SECONDS",
                      help="after SIGTERM, wait this long for the trainer before killing it (default 10)")
    run = root.add_argument_group("workers and limits")
    run.add_argument("--workdir", type=Path, default=Path(env("PBT_WORKDIR", "pbt_runs")), metavar="DIR",
                     help="model directories and worker identities go here (default pbt_runs)")
    run.add_argument("--worker-name", metavar="NAME",
                     help="stable name of this worker (default: first free slot w0, w1, ...)")
    run.add_argument("--workers", type=_count, default=1, metavar="N",
                     help="workers in this process (default 1)")
    run.add_argument("--max-trials", type=_count, metavar="N",
                     help="exit after this many trials (per worker)")
    run.add_argument("--max-time", type=_positive, metavar="SECONDS",
                     help="exit after this long; a running trial is stopped and handed back")
    run.add_argument("--heartbeat-seconds", type=_positive, default=30.0, metavar="SECONDS",
                     help="lease renewal (default 30)")
    run.add_argument("--poll-seconds", type=_positive, default=0.05, metavar="SECONDS",
                     help="checkpoint polling (default 0.05)")
    out = root.add_argument_group("output")
    out.add_argument("--quiet", action="store_true", help="no progress lines; warnings and errors only")
    out.add_argument("--log-level", default=None,
                     help="DEBUG, INFO, WARNING (default INFO, or WARNING with --quiet)")
    return root


def split_command(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Options before the first `--`, the command after it."""
    items = list(argv)
    if "--" in items:
        cut = items.index("--")
        return items[:cut], items[cut + 1:]
    return items, []


def load_study_config(path: Path) -> StudyConfig:
    """A StudyConfig from its JSON form (proto3 JSON of pbt_service.api.v1.StudyConfig). Raises ValueError."""
    try:
        message = json_format.Parse(path.read_text(encoding="utf-8"), study_pb2.StudyConfig())
    except (OSError, json_format.ParseError) as error:
        raise ValueError(f"--create-study {path}: {error}") from None
    return converters.study_config_from_proto(message)


def main(argv: Sequence[str] | None = None, job: PythonJob | None = None) -> int:
    """Entry point of `pbt-worker` and of `Job.main`; returns the exit code (2 for bad options,
    after a message naming the flag or variable)."""
    options, command = split_command(sys.argv[1:] if argv is None else argv)
    ap = parser(python_job=job is not None)
    args = ap.parse_args(options)
    if not args.study:
        ap.error("--study is required (or PBT_STUDY)")
    try:
        client = client_settings(args, retry_seconds=WORKER_RETRY_SECONDS)
    except SettingsError as error:
        ap.error(str(error))
    if job is not None and command:
        ap.error("a Python job takes no command after --")
    python_mode = job is not None or args.trainer_module is not None
    if python_mode and command:
        ap.error("give either --trainer-module or a command after --, not both")
    if not python_mode and not command:
        ap.error("give the training command after -- (command mode) or --trainer-module (Python mode)")
    runner.configure_logging(args.quiet, args.log_level)
    study_config = job.study_config if job is not None else None
    try:
        if args.create_study is not None:
            study_config = load_study_config(args.create_study)
    except ValueError as error:
        print(f"pbt-worker: {error}", file=sys.stderr)
        return runner.EXIT_USAGE
    settle = args.settle_seconds
    if settle is None:
        settle = 0.0 if python_mode else COMMAND_SETTLE_SECONDS
    settings = runner.WorkerSettings(
        client=client, study=args.study, workdir=args.workdir, workers=args.workers,
        worker_name=args.worker_name, max_trials=args.max_trials, max_time_seconds=args.max_time,
        grace_seconds=args.grace_seconds, heartbeat_seconds=args.heartbeat_seconds,
        poll_seconds=args.poll_seconds, settle_seconds=settle, keep_checkpoints=args.keep_checkpoints,
        collect_checkpoints=args.collect_checkpoints, checkpoint_pattern=args.checkpoint_regex, quiet=args.quiet,
    )

    def components(config: StudyConfig) -> tuple[Trainer, Evaluator]:
        parameters = [p.name for p in config.parameters]
        shadowed = sorted(set(parameters) & set(RESERVED))
        if shadowed:
            runner.log.warning("hparam(s) %s share a name with a reserved placeholder, which wins", shadowed)
        evaluator: Evaluator
        if args.evaluator_module:
            evaluator = cast(Evaluator, load_callable(args.evaluator_module, "--evaluator-module"))
        elif job is not None and job.evaluate is not None:
            evaluator = job.evaluate
        elif not python_mode and args.evaluator:
            template = CommandTemplate.parse([args.evaluator])
            check_executable(template, "evaluator")
            evaluator = CommandEvaluator(template, parameters, pattern=args.checkpoint_regex)
        else:
            raise ValueError("no evaluator: give --evaluator COMMAND or --evaluator-module MOD:FN")
        if job is not None:
            if job.train is None:
                raise ValueError("the job has no trainer: decorate a function with @job.trainer")
            return job.train, evaluator
        if args.trainer_module:
            return cast(Trainer, load_callable(args.trainer_module, "--trainer-module")), evaluator
        template = CommandTemplate.parse(command)
        check_executable(template, "trainer")
        trainer = CommandTrainer(
            template, parameters, grace_seconds=args.grace_seconds, echo=args.show_output
        )
        return trainer, evaluator

    return runner.run(settings, components, study_config)


if __name__ == "__main__":
    sys.exit(main())
