"""Training replay (paper section 3.9): re-run what a study found without the service.

A replay plan (`pbt_service.core.lineage.replay_plan`) lists the segments that trained one or
more final trials: each trial once, warm-start parents first. Replaying trains every segment
again from scratch with the user's trainer and evaluator, in its own directory, each segment
warm-starting from the checkpoint its parent segment wrote in this replay — e.g. to retrain the
best model, or an ensemble of the last generation, on new data with the schedule PBT discovered.

Example:
    plan = load_plan(Path("plan.json"))
    results = replay(plan, train, evaluate, Path("replay"))
    final_metrics = {r.trial_id: r.metrics for r in results if r.trial_id in plan.finals}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from pbt_service.core.errors import InvalidArgumentError
from pbt_service.core.lineage import PlanSegment, ReplayPlan
from worker_client.atomic import write_bytes_atomically
from worker_client.context import Evaluator, Trainer, TrialContext, checkpoint_step

PLAN_FORMAT = 1
PLAN_FILE = "plan.json"
"""The copy of the plan a replay keeps in its workdir; its presence marks the workdir as taken."""
SEGMENT_KEYS = ("trial_id", "generation", "start_step", "end_step", "hparams", "warm_start_trial_id")


class ReplayError(RuntimeError):
    """A segment could not be replayed (it wrote no checkpoint); the message names it."""


@dataclass(frozen=True)
class SegmentResult:
    """What one segment's replay produced: the checkpoint its children warm-start from, its step
    and the evaluator's metrics of it."""

    trial_id: int
    step: int
    metrics: Mapping[str, float]
    checkpoint: Path


def plan_to_json(plan: ReplayPlan) -> dict[str, object]:
    return {"format": PLAN_FORMAT, "finals": list(plan.finals), "segments": [asdict(s) for s in plan.segments]}


def save_plan(plan: ReplayPlan, path: Path) -> None:
    write_bytes_atomically(path, (json.dumps(plan_to_json(plan), indent=2) + "\n").encode())


def load_plan(path: Path) -> ReplayPlan:
    """Reads a plan written by `save_plan`, or a schedule file of older versions (a JSON list of
    one chain's segments, root first). Raises ValueError naming the file and the problem: not
    JSON, a missing or mistyped field, a warm start from a trial that is not an earlier segment,
    negative or decreasing steps, a final trial without a segment."""
    try:
        text = path.read_text()
    except OSError as error:
        raise InvalidArgumentError(f"{path}: cannot read the plan: {error.strerror}") from None
    try:
        return plan_from_json(json.loads(text))
    except json.JSONDecodeError as error:
        raise InvalidArgumentError(f"{path}: not a replay plan: not JSON ({error})") from None
    except InvalidArgumentError as error:
        raise InvalidArgumentError(f"{path}: not a replay plan: {error}") from None


def plan_from_json(data: object) -> ReplayPlan:
    """The plan of a parsed plan file; raises InvalidArgumentError naming the problem."""
    if isinstance(data, list):
        return _plan_from_schedule(data)
    if not isinstance(data, dict):
        raise InvalidArgumentError(f'expected an object with "format": {PLAN_FORMAT}')
    if data.get("format") != PLAN_FORMAT:
        raise InvalidArgumentError(f'"format" is {data.get("format")!r}; this version reads {PLAN_FORMAT}')
    _expect_keys(data, ("format", "finals", "segments"), "the plan")
    finals, segments = data["finals"], data["segments"]
    if not isinstance(finals, list) or not all(_is_int(f) for f in finals):
        raise InvalidArgumentError('"finals" must be a list of trial ids')
    if not isinstance(segments, list):
        raise InvalidArgumentError('"segments" must be a list')
    return ReplayPlan(tuple(finals), tuple(_segment(row, i) for i, row in enumerate(segments)))


def _plan_from_schedule(rows: list[object]) -> ReplayPlan:
    """The old schedule format: one chain, each segment warm-starting from the one before."""
    segments: list[PlanSegment] = []
    for index, row in enumerate(rows):
        if isinstance(row, dict):
            row = {**row, "warm_start_trial_id": segments[-1].trial_id if segments else None}
        segments.append(_segment(row, index))
    if not segments:
        raise InvalidArgumentError("the schedule has no segments")
    return ReplayPlan((segments[-1].trial_id,), tuple(segments))


def _segment(row: object, index: int) -> PlanSegment:
    where = f"segment {index}"
    if not isinstance(row, dict):
        raise InvalidArgumentError(f"{where}: expected an object")
    _expect_keys(row, SEGMENT_KEYS, where)
    for key in ("trial_id", "generation", "start_step", "end_step"):
        if not _is_int(row[key]):
            raise InvalidArgumentError(f"{where}: {key} must be an integer, not {row[key]!r}")
    if row["warm_start_trial_id"] is not None and not _is_int(row["warm_start_trial_id"]):
        raise InvalidArgumentError(f"{where}: warm_start_trial_id must be a trial id or null")
    hparams = row["hparams"]
    if not isinstance(hparams, dict) or not all(
        isinstance(v, int | float | str) and not isinstance(v, bool) for v in hparams.values()
    ):
        raise InvalidArgumentError(f"{where}: hparams must map names to numbers or strings")
    return PlanSegment(
        row["trial_id"], row["generation"], row["start_step"], row["end_step"], hparams, row["warm_start_trial_id"]
    )


def _expect_keys(row: dict[str, object], keys: tuple[str, ...], where: str) -> None:
    if missing := [k for k in keys if k not in row]:
        raise InvalidArgumentError(f"{where}: missing {', '.join(missing)}")
    if unknown := sorted(set(row) - set(keys)):
        raise InvalidArgumentError(f"{where}: unknown {', '.join(unknown)}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def replay(
    plan: ReplayPlan,
    trainer: Trainer,
    evaluator: Evaluator,
    workdir: Path,
    *,
    study: str = "replay",
    on_segment: Callable[[PlanSegment, SegmentResult], None] | None = None,
) -> list[SegmentResult]:
    """Trains every segment of `plan` once, in plan order, and evaluates the checkpoint it hands on;
    returns one result per segment, in plan order (`on_segment` sees each as it finishes).

    The segment of trial T trains in `workdir/trial-T/` with its hparams for end_step - start_step
    steps, warm-starting from the checkpoint its warm-start segment wrote at that segment's end
    step, or from that segment's last checkpoint when there is none at the end step (a trainer
    that stops elsewhere on new data). Checkpoints of the original study are never read.

    Raises FileExistsError when `workdir` already holds a replay (nothing is overwritten) and
    ReplayError when a segment writes no checkpoint.
    """
    _claim(workdir, plan)
    results: list[SegmentResult] = []
    handed_on: dict[int, Path] = {}
    for segment in plan.segments:
        model_dir = workdir / f"trial-{segment.trial_id}"
        model_dir.mkdir()
        parent = segment.warm_start_trial_id
        ctx = TrialContext(
            trial_id=segment.trial_id,
            study=study,
            generation=segment.generation,
            hparams=dict(segment.hparams),
            warm_start_checkpoint_path=str(handed_on[parent]) if parent is not None else None,
            model_dir=model_dir,
            steps=segment.end_step - segment.start_step,
            worker_id="replay",
        )
        trainer(ctx)
        checkpoint = _checkpoint_at(model_dir, segment.end_step)
        if checkpoint is None:
            raise ReplayError(
                f"segment of trial {segment.trial_id} (generation {segment.generation}, steps "
                f"{segment.start_step}-{segment.end_step}): the trainer wrote no checkpoint in {model_dir}"
            )
        step, path = checkpoint
        result = SegmentResult(segment.trial_id, step, dict(evaluator(ctx, path)), path)
        handed_on[segment.trial_id] = path
        results.append(result)
        if on_segment is not None:
            on_segment(segment, result)
    return results


def check_workdir(workdir: Path) -> None:
    """Raises FileExistsError when `workdir` already holds a replay."""
    taken = (workdir / PLAN_FILE).exists() or (
        workdir.is_dir() and any(p.name.startswith("trial-") for p in workdir.iterdir())
    )
    if taken:
        raise FileExistsError(f"{workdir} already holds a replay; give another --workdir or delete it")


def _claim(workdir: Path, plan: ReplayPlan) -> None:
    """Takes `workdir` by creating its plan file exclusively, so two replays never share it."""
    check_workdir(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with (workdir / PLAN_FILE).open("x") as handle:
            handle.write(json.dumps(plan_to_json(plan), indent=2) + "\n")
    except FileExistsError:
        raise FileExistsError(f"{workdir} already holds a replay; give another --workdir or delete it") from None


def _checkpoint_at(model_dir: Path, step: int) -> tuple[int, Path] | None:
    """The checkpoint of `step`, else the last one; None when there is none."""
    checkpoints = sorted((s, p) for p in model_dir.iterdir() if (s := checkpoint_step(p)) is not None)
    at_step = [c for c in checkpoints if c[0] == step]
    return at_step[0] if at_step else (checkpoints[-1] if checkpoints else None)
