"""Request checks shared by the servicer; each raises ValueError naming the field."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from pbt_service.core.types import Measurement, StudyConfig

STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_WORKER_ID = 256
MAX_COUNT = 100
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


def study_name(value: str, field: str = "name") -> str:
    if not value:
        raise ValueError(f"{field}: must be set")
    if not STUDY_NAME.match(value):
        raise ValueError(
            f"{field}: {value!r} is not a valid study name (letters, digits, '.', '_', '-'; "
            "at most 128 characters, starting with a letter or digit)"
        )
    return value


def worker_id(value: str, field: str = "worker_id") -> str:
    if not value or not value.strip():
        raise ValueError(f"{field}: must be set")
    if len(value) > MAX_WORKER_ID:
        raise ValueError(f"{field}: at most {MAX_WORKER_ID} characters")
    return value


def trial_id(value: int, field: str = "trial_id") -> int:
    if value <= 0:
        raise ValueError(f"{field}: must be a positive trial id, got {value}")
    return value


def count(value: int) -> int:
    if value < 0 or value > MAX_COUNT:
        raise ValueError(f"count: must be between 0 and {MAX_COUNT}, got {value}")
    return value or 1


def page_size(value: int) -> int:
    if value < 0 or value > MAX_PAGE_SIZE:
        raise ValueError(f"page_size: must be between 0 and {MAX_PAGE_SIZE}, got {value}")
    return value or DEFAULT_PAGE_SIZE


def page_token(value: str) -> int:
    """Tokens are the last number seen, as decimal text; anything else is rejected."""
    if not value:
        return 0
    if not value.isdigit():
        raise ValueError(f"page_token: {value!r} is not a token returned by ListTrials")
    return int(value)


def objective_metrics(config: StudyConfig, measurement: Measurement, field: str) -> None:
    """Every objective metric must be reported (NaN/inf are allowed: they mean divergence)."""
    missing = [o.metric for o in config.objectives if o.metric not in measurement.metrics]
    if missing:
        raise ValueError(f"{field}.metrics: missing objective metric(s) {', '.join(map(repr, missing))}")


def same_metrics(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    """Equality that treats NaN as equal to NaN (a retried call carries the same NaN)."""
    if a.keys() != b.keys():
        return False
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in ((a[k], b[k]) for k in a))
