"""A training machine installs the client alone: `pip install pbt-service` (no extras) into a fresh
virtualenv brings grpcio, protobuf and numpy, not the server's stack, and the client, its config
API and both commands work there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "pbt_service", "worker_client")
SERVER_ONLY = ("sqlalchemy", "alembic", "psycopg2", "grpc_health", "grpc_reflection")
PROBE = """
import importlib.util, sys
import worker_client
from worker_client import (AlgorithmConfig, ClientSettings, Comparison, Condition, Goal, MedianStopping, Objective,
                           ParameterSpec, ParameterType, PbtClient, Scale, StudyConfig, run_workers)
import worker_client.cli, worker_client.results_cli, worker_client.replay, worker_client.garbage_collection
StudyConfig(parameters=(ParameterSpec("lr", ParameterType.FLOAT, low=1e-4, high=1.0, scale=Scale.LOG),),
            objectives=(Objective("loss", Goal.MINIMIZE),), algorithm=AlgorithmConfig(population_size=4))
print("installed:", ",".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is not None))
print("imported:", ",".join(m for m in sys.argv[1:] if m in sys.modules))
print("from:", worker_client.__file__)
"""


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PBT_")}
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow
def test_the_plain_install_is_the_client_without_the_server_stack(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: an in-tree build would write into the shared checkout
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / name, source / name)
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    run([str(python), "-m", "pip", "install", "--quiet", str(source)], tmp_path)

    probe = run([str(python), "-c", PROBE, *SERVER_ONLY, "examples"], tmp_path).stdout
    assert "installed: \n" in probe, probe
    assert "imported: \n" in probe, probe
    assert str(venv) in probe.split("from:")[1], probe
    for command in ("pbt-worker", "pbt-results"):
        assert "--service" in run([str(bin_dir / command), "--help"], tmp_path).stdout
