"""The worker image's install steps, run for real without Docker: a fresh virtualenv stands in for
the image's Python, the build stage's COPYs are copied into a source folder, the `pip` commands of
worker.Dockerfile run as written (its /wheels folder moved into a temporary one), then the final
stage's COPYs are placed in its WORKDIR. The result has `pbt-worker`, imports the toy example the
image runs, and has no server stack (SQLAlchemy, psycopg2)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from tests.deploy.deploy_files import ROOT, WORKER_DOCKERFILE, Stage, read_dockerfile

SERVER_ONLY = ("sqlalchemy", "psycopg2", "alembic")
PROBE = """
import importlib.util, sys
import examples.toy.problem, worker_client.cli
print("found:", ",".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is not None))
"""


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("PBT_")}
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    assert done.returncode == 0, f"{shlex.join(argv)}:\n{done.stdout}\n{done.stderr}"
    return done


def place_copies(stage: Stage, root: Path) -> None:
    """The stage's COPYs from the build context, into `root` standing for the image's `/`."""
    for sources, destination, origin, workdir in stage.copies():
        if origin is not None:
            continue
        target = root / str(PurePosixPath(workdir) / destination).lstrip("/")
        for source in sources:
            into = target / Path(source).name if destination.endswith("/") or len(sources) > 1 else target
            into.parent.mkdir(parents=True, exist_ok=True)
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, into, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            else:
                shutil.copy2(ROOT / source, into)


def run_pip_steps(stage: Stage, python: Path, image_root: Path) -> int:
    """Runs the stage's `pip install` / `pip wheel` commands in its WORKDIR under `image_root`,
    with absolute paths mapped under it; returns how many ran."""
    count = 0
    workdir = PurePosixPath("/")
    for instruction in stage.instructions:
        if instruction.keyword == "WORKDIR":
            workdir = workdir / instruction.text
        if instruction.keyword != "RUN":
            continue
        for command in instruction.text.split("&&"):
            words = shlex.split(command)
            if words[:1] not in (["pip"], ["pip3"]):
                continue
            mapped = [str(image_root / w.lstrip("/")) if w.startswith("/") else w for w in words[1:]]
            cwd = image_root / str(workdir).lstrip("/")
            cwd.mkdir(parents=True, exist_ok=True)
            run([str(python), "-m", "pip", *mapped], cwd)
            count += 1
    return count


@pytest.mark.slow
def test_the_worker_image_steps_install_the_client_alone(tmp_path: Path) -> None:
    build, final = read_dockerfile(WORKER_DOCKERFILE)
    image = tmp_path / "image"
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    python = venv / "bin" / "python"

    place_copies(build, image)
    (image / "wheels").mkdir()
    assert run_pip_steps(build, python, image) == 1
    assert run_pip_steps(final, python, image) == 1
    place_copies(final, image)
    app = image / final.workdir().lstrip("/")

    assert "--worker-name" in run([str(venv / "bin" / "pbt-worker"), "--help"], app).stdout
    found = run([str(python), "-c", PROBE, *SERVER_ONLY], app).stdout
    assert "found: \n" in found, f"the worker image has the server stack: {found}"
    cmd = final.all("CMD")[-1].exec_form
    assert cmd is not None and (app / cmd[cmd.index("--create-study") + 1]).is_file()
