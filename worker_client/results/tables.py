"""Rows printed as an aligned table, CSV or JSON: the three `--format`s of `pbt-results`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from worker_client.results.rows import write_csv
from worker_client.results.schedules import format_value

FORMATS = ("table", "csv", "json")


def render(rows: list[dict[str, Any]], fmt: str, *, columns: Sequence[str] | None = None, empty: str = "") -> str:
    """`rows` (dicts with the same keys) in `fmt`. A table shows `columns` (all by default) with
    short numbers and says `empty` when there are no rows; CSV and JSON keep every column and
    full precision, so they can be read back exactly."""
    if fmt == "json":
        return json.dumps(rows, indent=2, allow_nan=False)
    if fmt == "csv":
        return write_csv(rows, None).rstrip("\n")
    if fmt != "table":
        raise ValueError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if not rows:
        return empty
    shown = list(columns) if columns is not None else list(rows[0])
    cells = [[_cell(row.get(c)) for c in shown] for row in rows]
    widths = [max(len(x) for x in [c, *(r[i] for r in cells)]) for i, c in enumerate(shown)]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)) for line in [shown, *cells])


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or value == "":
        return "-"
    return format_value(value)
