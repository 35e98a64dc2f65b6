"""Trials and measurements as flat rows, and the files and DataFrames made from them.

Column names follow what Optuna users know from `trials_dataframe()`: one `param_<name>` column per
hyperparameter and one `metric_<name>` column per metric of the final measurement, so a study
loads into pandas, a spreadsheet or DuckDB without any unpacking.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format

from pbt_service import converters
from pbt_service.core.types import Study, Trial
from worker_client.results.events import Event

if TYPE_CHECKING:
    import pandas

    from worker_client.results.study_results import StudyResults

EXPORT_FORMATS = ("csv", "json", "parquet")
TRIAL_COLUMNS = (
    "trial_id", "number", "generation", "status", "event", "worker_id", "parent_trial_id",
    "initiator_parent_trial_id", "step", "elapsed_seconds", "create_time", "end_time",
    "checkpoint_path", "checkpoint_state", "status_message",
)  # fmt: skip
MEASUREMENT_COLUMNS = ("trial_id", "generation", "step", "final", "elapsed_seconds", "create_time",
                       "checkpoint_path", "checkpoint_state")


def trial_rows(study: Study, trials: Sequence[Trial], events: Mapping[int, Event]) -> list[dict[str, Any]]:
    """One row per trial, columns in a fixed order: TRIAL_COLUMNS, then parameters, then metrics."""
    params = [p.name for p in study.config.parameters]
    metrics = _metric_names(study, [t.final_measurement.metrics for t in trials if t.final_measurement])
    rows = []
    for t in trials:
        final = t.final_measurement
        row: dict[str, Any] = {
            "trial_id": t.id, "number": t.number, "generation": t.generation, "status": t.status.value,
            "event": events[t.id].value if t.id in events else "", "worker_id": t.worker_id,
            "parent_trial_id": t.parent_trial_id, "initiator_parent_trial_id": t.initiator_parent_trial_id,
            "step": final.step if final else None, "elapsed_seconds": final.elapsed_seconds if final else None,
            "create_time": iso_time(t.create_time), "end_time": iso_time(t.end_time),
            "checkpoint_path": final.checkpoint_path if final else "",
            "checkpoint_state": final.checkpoint_state.value if final and final.checkpoint_path else "",
            "status_message": t.status_message,
        }  # fmt: skip
        row.update({f"param_{name}": t.hparams.get(name) for name in params})
        row.update({f"metric_{name}": finite(final.metrics.get(name)) if final else None for name in metrics})
        rows.append(row)
    return rows


def measurement_rows(trials: Sequence[Trial]) -> list[dict[str, Any]]:
    """One row per measurement, the final one flagged; a trial's final measurement is also its
    last reported one when it reported any, and then it is listed once."""
    names = sorted({m for t in trials for x in (*t.measurements, t.final_measurement) if x for m in x.metrics})
    rows = []
    for t in trials:
        listed = list(t.measurements)
        final = t.final_measurement
        if final is not None and not any(m.step == final.step for m in listed):
            listed.append(final)
        for m in sorted(listed, key=lambda m: m.step):
            row: dict[str, Any] = {
                "trial_id": t.id, "generation": t.generation, "step": m.step,
                "final": final is not None and m.step == final.step, "elapsed_seconds": m.elapsed_seconds,
                "create_time": iso_time(m.create_time), "checkpoint_path": m.checkpoint_path,
                "checkpoint_state": m.checkpoint_state.value if m.checkpoint_path else "",
            }  # fmt: skip
            row.update({f"metric_{name}": finite(m.metrics.get(name)) for name in names})
            rows.append(row)
    return rows


def dataframe(rows: list[dict[str, Any]], *, kind: str) -> pandas.DataFrame:
    """Rows as a DataFrame; the columns stay even for an empty study."""
    try:
        import pandas
    except ImportError:
        raise ImportError("DataFrames need pandas: pip install 'pbt-service[results]'") from None
    columns = _columns(rows, kind)
    frame = pandas.DataFrame(rows, columns=columns)
    for column in ("create_time", "end_time"):
        if column in frame:
            frame[column] = pandas.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


def study_document(results: StudyResults) -> dict[str, Any]:
    """Everything about a study as one JSON-ready object: its configuration as the API spells it,
    its summary, and every trial with all its measurements and lineage links."""
    summary = results.summary()
    return {
        "format": 1,
        "study": {
            "name": results.study.name,
            "state": results.study.state.value,
            "create_time": iso_time(results.study.create_time),
            "config": json_format.MessageToDict(converters.study_config_to_proto(results.study.config)),
            "generations_completed": summary.generations_completed,
            "best_trial_id": summary.best_trial_id,
        },
        "trials": [
            {**row, "hparams": dict(t.hparams),
             "measurements": measurement_rows([t])}
            for row, t in zip(results.trial_rows(), results.all_trials(), strict=True)
        ],
    }


def export(results: StudyResults, directory: Path, formats: Sequence[str]) -> list[Path]:
    """Writes `trials.<fmt>` and `measurements.<fmt>` for csv and parquet, and `study.json` (the
    whole study in one document) for json. Parquet needs pyarrow. Raises ValueError for an unknown
    format and refuses to overwrite an existing export."""
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown or not formats:
        raise ValueError(f"format: {', '.join(unknown) or 'none given'}; choose from {', '.join(EXPORT_FORMATS)}")
    if "parquet" in formats:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ImportError("Parquet export needs pyarrow: pip install 'pbt-service[results]'") from None
    targets = _targets(directory, formats)
    taken = [p for p in targets if p.exists()]
    if taken:
        raise FileExistsError(f"{taken[0]} exists; export into an empty directory")
    directory.mkdir(parents=True, exist_ok=True)
    tables = {"trials": results.trial_rows(), "measurements": results.measurement_rows()}
    written: list[Path] = []
    for fmt in formats:
        if fmt == "json":
            path = directory / "study.json"
            path.write_text(json.dumps(study_document(results), indent=2, allow_nan=False) + "\n")
            written.append(path)
            continue
        for name, rows in tables.items():
            path = directory / f"{name}.{fmt}"
            (write_csv if fmt == "csv" else _write_parquet)(rows, path, name)
            written.append(path)
    return written


def write_csv(rows: list[dict[str, Any]], path: Path | None, kind: str = "trials") -> str:
    """Rows as CSV (to `path` when given); returns the text. Missing values are empty cells."""
    import io

    buffer = io.StringIO()
    columns = _columns(rows, kind)
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    if path is not None:
        path.write_text(buffer.getvalue())
    return buffer.getvalue()


def _write_parquet(rows: list[dict[str, Any]], path: Path, kind: str) -> None:
    import pyarrow
    import pyarrow.parquet

    columns = _columns(rows, kind)
    table = pyarrow.Table.from_pylist(rows) if rows else pyarrow.table({c: pyarrow.array([]) for c in columns})
    pyarrow.parquet.write_table(table, path)


def _columns(rows: list[dict[str, Any]], kind: str) -> list[str]:
    """The rows' columns; for no rows, the fixed ones of `kind`, so an empty table keeps its header."""
    return list(rows[0]) if rows else list(TRIAL_COLUMNS if kind == "trials" else MEASUREMENT_COLUMNS)


def _targets(directory: Path, formats: Sequence[str]) -> list[Path]:
    paths = []
    for fmt in formats:
        paths += [directory / "study.json"] if fmt == "json" else [directory / f"{n}.{fmt}" for n in
                                                                    ("trials", "measurements")]
    return paths


def _metric_names(study: Study, metrics: Sequence[Mapping[str, float]]) -> list[str]:
    """The objectives first, in the study's order, then every other metric by name."""
    objectives = [o.metric for o in study.config.objectives]
    return objectives + sorted({m for ms in metrics for m in ms} - set(objectives))


def finite(value: float | None) -> float | None:
    """NaN and infinities (a diverged trial) become missing values, which every format can hold."""
    if value is None:
        return None
    return float(value) if math.isfinite(value) else None


def iso_time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
