"""One progress line per measurement: which worker, trial, generation, step and latest metrics.

Lines go to stdout (logs go to stderr), so `pbt-worker ... | tee progress.txt` keeps only them;
`--quiet` turns them off for clusters.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from pbt_service.core.types import Measurement, Trial

MAX_METRICS = 4


class ProgressPrinter:
    """Prints `[w0] trial 12 gen 3 step 400 loss=0.2345 accuracy=0.91 (2.1s)`; thread-safe."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def measured(
        self, worker: str, trial: Trial, measurement: Measurement, objectives: Sequence[str]
    ) -> None:
        names = [*objectives, *sorted(k for k in measurement.metrics if k not in objectives)][:MAX_METRICS]
        metrics = " ".join(f"{k}={measurement.metrics[k]:.4g}" for k in names if k in measurement.metrics)
        line = (
            f"[{worker}] trial {trial.id} gen {trial.generation} step {measurement.step} {metrics} "
            f"({measurement.elapsed_seconds:.1f}s)"
        )
        stream = self._stream or sys.stdout
        with self._lock:
            print(line, file=stream, flush=True)
