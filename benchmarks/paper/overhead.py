"""Figure 9 in the same report: runs `benchmarks/client_overhead.py` (which measures what the worker
client adds between two trials) as a subprocess and keeps its table verbatim."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUICK_ARGS = ("--generations", "2", "--train-seconds", "0.05", "--eval-seconds", "0.01")


def run_overhead(quick: bool, timeout: float = 600.0) -> dict[str, str]:
    """{"command": ..., "output": ...}: the full benchmark, or a reduced one in quick mode."""
    args = [sys.executable, "benchmarks/client_overhead.py", *(QUICK_ARGS if quick else ())]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    output = done.stdout if done.returncode == 0 else f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-2000:]}"
    return {"command": "python " + " ".join(args[1:]), "output": output, "returncode": str(done.returncode)}
