"""LineageRecord <-> JSON for the `trials.lineage_json` column.

The record is read whole with its trial and never filtered on, so one small document is the right
shape; '' (rows written before migration 0005, fresh lineages) reads as the empty record.
"""

from __future__ import annotations

import functools
import json

from pbt_service.core.types import LineageRecord

EMPTY = LineageRecord()


def lineage_to_json(record: LineageRecord) -> str:
    if record == EMPTY:
        return ""
    document = {
        "history": [[step, list(f)] for step, f in record.history],
        "exploit_step": record.exploit_step,
        "exploit_generation": record.exploit_generation,
        "best": list(record.best) if record.best is not None else None,
        "best_generation": record.best_generation,
    }
    return json.dumps(document, separators=(",", ":"))


@functools.lru_cache(maxsize=4096)
def lineage_from_json(text: str) -> LineageRecord:
    """Raises ValueError on malformed text (a corrupt row, never user input)."""
    if not text:
        return EMPTY
    try:
        d = json.loads(text)
        return LineageRecord(
            history=tuple((int(step), tuple(float(x) for x in f)) for step, f in d["history"]),
            exploit_step=int(d["exploit_step"]),
            exploit_generation=int(d["exploit_generation"]),
            best=tuple(float(x) for x in d["best"]) if d["best"] is not None else None,
            best_generation=int(d["best_generation"]),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"malformed lineage JSON: {e}") from e
