"""The two Dockerfiles without a Docker daemon: they parse, build in two stages (wheels, then a
clean image that installs only the wheels), start FROM an exactly pinned base, end as a non-root
user, ship no compiler, COPY only files that exist and that .dockerignore lets through, and the
worker image installs the client alone."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.deploy.deploy_files import (
    DOCKERFILES,
    ROOT,
    SERVICE_DOCKERFILE,
    WORKER_DOCKERFILE,
    Stage,
    dockerignore_patterns,
    ignored,
    image_files,
    in_image,
    parse_dockerfile,
    read_dockerfile,
)

PINNED = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+(-[\w.-]+)?(@sha256:[0-9a-f]{64})?$")
"""An exact version tag (`python:3.11.11-slim-bookworm`), optionally with a digest."""
BUILD_TOOLS = ("build-essential", "gcc", "g++", "clang", "make", "cmake", "python3-dev", "libpq-dev", "cargo",
               "rustc")
ids = [path.name for path in DOCKERFILES]


def pip_installs(stage: Stage) -> list[list[str]]:
    """The `pip install` / `pip wheel` commands of a stage's RUN instructions, as argv."""
    found = []
    for run in stage.all("RUN"):
        for command in re.split(r"&&|;", run.text):
            words = shlex.split(command)
            if len(words) > 1 and words[0] in ("pip", "pip3") and words[1] in ("install", "wheel"):
                found.append(words)
    return found


def test_the_parser_reads_stages_continuations_and_exec_forms() -> None:
    stages = parse_dockerfile(
        "ARG X=1\n# comment\nFROM a:1.2.3 AS build\nRUN one \\\n    # inside\n    two\n"
        'FROM b:4.5.6\nCOPY --from=build /w /w\nWORKDIR /app\nCOPY x y/\nCMD ["p", "q"]\n')
    assert [(s.base, s.name) for s in stages] == [("a:1.2.3", "build"), ("b:4.5.6", None)]
    assert stages[0].all("RUN")[0].text == "one two"
    assert stages[1].all("CMD")[0].exec_form == ["p", "q"]
    assert list(stages[1].copies()) == [(["/w"], "/w", "build", "/"), (["x"], "y/", None, "/app")]
    assert image_files(stages[1]) == {"/app/y/x": ROOT / "x"}
    with pytest.raises(ValueError, match="unknown instruction"):
        parse_dockerfile("FROM a:1.2.3\nRUNN x\n")
    with pytest.raises(ValueError, match="before the first FROM"):
        parse_dockerfile("RUN x\nFROM a:1.2.3\n")


@pytest.mark.parametrize("path", DOCKERFILES, ids=ids)
def test_multi_stage_pinned_and_non_root(path: Path) -> None:
    stages = read_dockerfile(path)
    assert len(stages) >= 2, "a builder stage and a run stage"
    names = {s.name for s in stages if s.name}
    for stage in stages:
        assert stage.base in names or PINNED.match(stage.base), f"{stage.base}: pin an exact version"
    final = stages[-1]
    assert final.base not in names, "the final stage starts from a clean base image"
    user = final.user
    assert user is not None and user.split(":")[0] not in ("root", "0"), f"USER {user}"
    assert final.instructions[-1].keyword in ("USER", "CMD", "ENTRYPOINT", "EXPOSE", "LABEL")
    assert all(i.keyword != "USER" or i is final.all("USER")[-1] for i in final.instructions)
    after_user = final.instructions[final.instructions.index(final.all("USER")[-1]):]
    assert not [i for i in after_user if i.keyword == "RUN"], "nothing runs as root after USER"
    assert re.fullmatch(r"\d+(:\d+)?", user), "numeric, so that Kubernetes' runAsNonRoot can check it"


@pytest.mark.parametrize("path", DOCKERFILES, ids=ids)
def test_the_final_stage_installs_built_wheels_and_no_build_tools(path: Path) -> None:
    stages = read_dockerfile(path)
    final = stages[-1]
    for run in final.all("RUN"):
        words = set(re.split(r"[\s&;|]+", run.text))
        assert not words & set(BUILD_TOOLS), f"{path.name}:{run.line}: build tools in the run image"
    builders = {s.name for s in stages[:-1]}
    assert any(origin in builders for _, _, origin, _ in final.copies()), "the wheels come from the builder"
    installs = pip_installs(final)
    assert installs and all("--no-index" in argv for argv in installs), "only the builder's wheels"
    assert any(argv[1] == "wheel" for s in stages[:-1] for argv in pip_installs(s))
    assert any("rm -rf /wheels" in r.text for r in final.all("RUN")), "the wheels do not stay in the image"


def test_the_service_image_installs_the_server_and_the_worker_image_the_client_alone() -> None:
    service = [w for argv in pip_installs(read_dockerfile(SERVICE_DOCKERFILE)[-1]) for w in argv]
    worker = [w for argv in pip_installs(read_dockerfile(WORKER_DOCKERFILE)[-1]) for w in argv]
    assert "pbt-service[server]" in service
    assert "pbt-service" in worker and not [w for w in worker if "[" in w], "no extras in the worker image"
    worker_build = [w for s in read_dockerfile(WORKER_DOCKERFILE)[:-1] for argv in pip_installs(s) for w in argv]
    assert "." in worker_build and not [w for w in worker_build if "[" in w]


@pytest.mark.parametrize("path", DOCKERFILES, ids=ids)
def test_every_copied_file_exists_and_reaches_the_build_context(path: Path) -> None:
    patterns = dockerignore_patterns()
    for stage in read_dockerfile(path):
        for sources, _, origin, _ in stage.copies():
            if origin is not None:
                continue
            for source in sources:
                assert (ROOT / source).exists(), f"{path.name}: COPY {source}: no such file"
                assert not ignored(source.removeprefix("./"), patterns), f"{path.name}: {source} is .dockerignored"


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    patterns = dockerignore_patterns()
    for name in (".venv/bin/python", ".git/HEAD", "pbt_service/__pycache__/cli.cpython-311.pyc", "runs/x/pbt.db",
                 "deploy/kubernetes/secret.env", "tests/conftest.py", "pbt.db"):
        assert ignored(name, patterns), name
    for name in ("pbt_service/cli.py", "worker_client/cli.py", "pyproject.toml", "README.md",
                 "examples/toy/problem.py", "deploy/toy-study.json"):
        assert not ignored(name, patterns), name


def test_the_worker_image_carries_the_example_it_runs() -> None:
    final = read_dockerfile(WORKER_DOCKERFILE)[-1]
    assert in_image(final, "toy-study.json") == ROOT / "deploy" / "toy-study.json"
    assert in_image(final, "examples/toy/problem.py") == ROOT / "examples" / "toy" / "problem.py"
    assert in_image(final, "examples/__init__.py") == ROOT / "examples" / "__init__.py"
    assert in_image(final, "examples/digits/model.py") is None, "only the NumPy example"


@pytest.mark.parametrize("path", DOCKERFILES, ids=ids)
def test_the_images_expose_the_ports_their_commands_use(path: Path) -> None:
    final = read_dockerfile(path)[-1]
    exposed = {int(p) for i in final.all("EXPOSE") for p in i.text.split()}
    cmd = final.all("CMD")[-1].exec_form
    assert cmd is not None
    if "--port" in cmd:
        assert int(cmd[cmd.index("--port") + 1]) in exposed
