"""Rules on measurements that need the study's config, and the equality a retry is judged by."""

from __future__ import annotations

import math
from collections.abc import Mapping

from pbt_service.core.errors import InvalidArgumentError
from pbt_service.core.types import Measurement, StudyConfig


def objective_metrics(config: StudyConfig, measurement: Measurement, field: str) -> None:
    """Every objective metric must be reported (NaN/inf are allowed: they mean divergence)."""
    missing = [o.metric for o in config.objectives if o.metric not in measurement.metrics]
    if missing:
        raise InvalidArgumentError(f"{field}.metrics: missing objective metric(s) {', '.join(map(repr, missing))}")


def same_metrics(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    """Equality that treats NaN as equal to NaN (a retried call carries the same NaN)."""
    if a.keys() != b.keys():
        return False
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in ((a[k], b[k]) for k in a))
