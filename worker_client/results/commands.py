"""The query subcommands of `pbt-results`: each takes the open `Results` and its parsed options and
returns the text to print. They read through the same API as Python users and the dashboard."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pbt_service.core.types import Comparison, Trial
from worker_client.results.rows import EXPORT_FORMATS, measurement_rows
from worker_client.results.study_results import SORT_KEYS, Results, StudyResults
from worker_client.results.summary import StudySummary
from worker_client.results.tables import FORMATS, render

TRIAL_TABLE = ("trial_id", "generation", "status", "event", "worker_id", "parent_trial_id", "step")
"""The columns a trials table shows before the metrics and parameters (CSV and JSON show all)."""


def add_query_commands(commands: Any) -> None:
    """Adds studies, trials, trial, best, lineage, export and plot to a subparsers object."""
    fmt: dict[str, Any] = {"choices": FORMATS, "default": "table", "help": "output format (default: table)"}
    commands.add_parser("studies", help="list studies with their state and progress").add_argument("--format", **fmt)
    trials = commands.add_parser("trials", help="list a study's trials, filtered and sorted")
    trials.add_argument("study")
    trials.add_argument("--status", action="append", default=[], metavar="STATUS",
                        help="active, completed, stopped or failed (repeatable; default: all)")
    trials.add_argument("--generation", type=int, help="only this generation")
    trials.add_argument("--worker", help="only trials trained by this worker id")
    trials.add_argument("--parent", type=int, metavar="TRIAL_ID", help="only trials warm-started from this trial")
    trials.add_argument("--sort", default="id", metavar="KEY",
                        help=f"{', '.join(SORT_KEYS)} or a metric name (default: id; fitness: best first)")
    trials.add_argument("--desc", action="store_true", help="reverse the order")
    trials.add_argument("--limit", type=int, metavar="N", help="at most N trials")
    trials.add_argument("--format", **fmt)
    one = commands.add_parser("trial", help="one trial with all its measurements")
    one.add_argument("trial_id", type=int)
    one.add_argument("--format", **fmt)
    top = commands.add_parser("best", help="the best completed trials by the study's fitness "
                              "(the Pareto front for a Pareto study)")
    top.add_argument("study")
    top.add_argument("--top", type=int, default=5, help="how many (default: 5; a Pareto front is shown whole)")
    top.add_argument("--format", **fmt)
    lin = commands.add_parser("lineage", help="a trial's ancestors and descendants (who warm-started from whom)")
    lin.add_argument("trial_id", type=int)
    lin.add_argument("--format", **fmt)
    exp = commands.add_parser("export", help="write a study (trials, parameters, measurements, lineage) to files")
    exp.add_argument("study")
    exp.add_argument("--out", type=Path, required=True, metavar="DIR", help="a directory without an export yet")
    exp.add_argument("--format", action="append", dest="formats", choices=EXPORT_FORMATS, metavar="FORMAT",
                     help=f"{', '.join(EXPORT_FORMATS)} (repeatable; default: csv and json; parquet needs pyarrow)")
    plot = commands.add_parser("plot", help="write the study's plots (PNG with matplotlib, HTML with plotly)")
    plot.add_argument("study")
    plot.add_argument("--out", type=Path, required=True, metavar="DIR")
    plot.add_argument("--plot", action="append", dest="plots", metavar="NAME",
                      help="progress, best, schedule, lineage or hyperparameters (repeatable; default: all)")
    plot.add_argument("--format", action="append", dest="formats", choices=("png", "html"), metavar="FORMAT",
                      help="png or html (repeatable; default: both)")
    plot.add_argument("--metric", help="the metric to plot (default: the study's first objective)")
    plot.add_argument("--top", type=int, default=3, help="trials in the schedule plot (default: 3)")


QUERY_COMMANDS = ("studies", "trials", "trial", "best", "lineage", "export", "plot")


def run_query(results: Results, args: argparse.Namespace) -> str:
    """The output of one query subcommand. Raises NotFoundError, ValueError (a bad option value,
    message naming it), FileExistsError (an export over an earlier one)."""
    command = args.command
    if command == "studies":
        rows = [_study_row(s) for s in results.studies()]
        return render(rows, args.format, empty="no studies yet")
    if command == "trial":
        trial = results.trial(args.trial_id)
        return _trial_text(results.study(trial.study), trial, args.format)
    if command == "lineage":
        trial = results.trial(args.trial_id)
        return _lineage_text(results.study(trial.study), trial.id, args.format)
    study = results.study(args.study)
    if command == "trials":
        if args.limit is not None and args.limit < 0:
            raise ValueError(f"--limit: must not be negative, got {args.limit}")
        chosen = study.trials(status=args.status, generation=args.generation, worker=args.worker,
                              parent=args.parent, sort=args.sort, descending=args.desc, limit=args.limit)
        return _trials_table(study, chosen, args.format, empty=f"study {study.name}: no trials match")
    if command == "best":
        if args.top < 1:
            raise ValueError(f"--top: must be at least 1, got {args.top}")
        pareto = study.study.config.comparison is Comparison.PARETO and len(study.study.config.objectives) > 1
        chosen = study.pareto_front() if pareto else study.best(args.top)
        empty = f"study {study.name}: no completed trials yet"
        return _trials_table(study, chosen, args.format, empty=empty, more=("checkpoint_path", "checkpoint_state"))
    if command == "export":
        paths = study.export(str(args.out), args.formats or ("csv", "json"))
        return "\n".join(f"wrote {p}" for p in paths)
    if command == "plot":
        return _plot(study, args)
    raise ValueError(f"unknown command {command}")


def _study_row(s: StudySummary) -> dict[str, Any]:
    limit = str(s.max_generations) if s.max_generations else "-"
    row: dict[str, Any] = {
        "study": s.name, "state": s.state.value, "trials": s.trial_count,
        "completed": s.by_status["completed"], "active": s.by_status["active"],
        "generations": f"{s.generations_completed}/{limit}", "best_trial": s.best_trial_id,
    }  # fmt: skip
    for metric in s.objectives:
        row[f"best_{metric}"] = s.best_metrics.get(metric)
    return row


def _trials_table(
    study: StudyResults, trials: list[Trial], fmt: str, *, empty: str, more: tuple[str, ...] = ()
) -> str:
    rows = study.trial_rows(trials)
    if fmt != "table" or not rows:
        return render(rows, fmt, empty=empty)
    extra = [c for c in rows[0] if c.startswith(("metric_", "param_"))]
    return render(rows, fmt, columns=[*TRIAL_TABLE, *extra, *more], empty=empty)


def _trial_text(study: StudyResults, trial: Trial, fmt: str) -> str:
    row = study.trial_rows([study.trial(trial.id)])[0]
    measurements = measurement_rows([study.trial(trial.id)])
    if fmt == "json":
        return json.dumps({**row, "hparams": dict(trial.hparams), "measurements": measurements},
                          indent=2, allow_nan=False)
    if fmt == "csv":
        return render(measurements, "csv")
    header = "\n".join(f"{k}: {v}" for k, v in row.items() if v not in (None, ""))
    table = render(measurements, "table", empty="no measurements yet")
    return f"{header}\n\nmeasurements:\n{table}"


def _lineage_text(study: StudyResults, trial_id: int, fmt: str) -> str:
    lineage = study.lineage(trial_id)
    rows = []
    for relation, trials in (("ancestor", lineage.ancestors), ("trial", (lineage.trial,)),
                             ("descendant", lineage.descendants)):
        for row in study.trial_rows(trials):
            rows.append({"relation": relation, **row})
    if fmt != "table":
        return render(rows, fmt)
    extra = [c for c in rows[0] if c.startswith(("metric_", "param_"))]
    return render(rows, fmt, columns=["relation", *TRIAL_TABLE, *extra])


def _plot(study: StudyResults, args: argparse.Namespace) -> str:
    from worker_client.results.plots import PLOTS, write_plots

    names = args.plots or list(PLOTS)
    unknown = [n for n in names if n not in PLOTS]
    if unknown:
        raise ValueError(f"--plot: {', '.join(unknown)} is not one of {', '.join(PLOTS)}")
    if args.top < 1:
        raise ValueError(f"--top: must be at least 1, got {args.top}")
    metrics = {m for t in study.all_trials() for x in (*t.measurements, t.final_measurement) if x for m in x.metrics}
    metrics |= {o.metric for o in study.study.config.objectives}
    if args.metric is not None and args.metric not in metrics:
        raise ValueError(f"--metric: {args.metric!r} is not a metric of study {study.name} "
                         f"({', '.join(sorted(metrics))})")
    paths = write_plots(study.study, study.all_trials(), args.out, formats=args.formats or ("png", "html"),
                        names=names, metric=args.metric, top=args.top)
    note = "" if study.best(1) else f" (study {study.name} has no completed trials yet: the plots say so)"
    return "\n".join(f"wrote {p}" for p in paths) + note
