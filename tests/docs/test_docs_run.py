"""Every documented path works as written: each markdown file's shell commands and Python snippets run
in order, as a reader following that file would run them, against a real service that requires a
token (tests/docs/doc_blocks.py says how blocks and markers read, doc_runner.py how they run).

One test per file. The files run two at a time (most of a block's time is one process on one core);
a failure names the block's file and line, the command, and the end of its output.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from pbt_service.controller import ServiceSettings
from pbt_service.server import ServerSettings, create_server
from tests.docs.doc_blocks import doc_files, read_blocks
from tests.docs.doc_runner import (
    SERVICE_PORT,
    SUBSTITUTIONS,
    TOKEN,
    Context,
    Failure,
    environment,
    make_workdir,
    python_bin,
    run_block,
)

RUN_DOCS = [doc for doc in doc_files() if any(b.runs for b in read_blocks(doc))]
POSTGRES = next(rule.pattern for rule in SUBSTITUTIONS if "PostgreSQL" in rule.why)
PARALLEL = 2
_creating = threading.Lock()


@dataclass(frozen=True)
class DocRun:
    failure: Failure | None
    timings: tuple[str, ...]


@contextmanager
def token_service(workdir: Path) -> Iterator[int]:
    """The docs' `localhost:50051`: the real service on `pbt.db` in the working directory (where
    `pbt-service serve` would have it), refusing every call without the token."""
    with _creating:  # creating the schema goes through Alembic, whose context is process-global
        running = create_server(ServerSettings(
            database_url=f"sqlite:///{workdir / 'pbt.db'}", host="127.0.0.1", port=0, auth_token=TOKEN,
            service=ServiceSettings(retry_after_seconds=0.2),
        ))
    try:
        yield running.port
    finally:
        running.stop(grace=1.0)


def new_database(server: str) -> str:
    """An empty database on the test's PostgreSQL server (it goes with the server)."""
    from sqlalchemy.engine import make_url

    from tests.conftest import _execute_autocommit

    name = f"docs_{uuid.uuid4().hex[:12]}"
    _execute_autocommit(server, f'CREATE DATABASE "{name}"')
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def run_doc(doc: str, folder: Path, postgres: str | None) -> DocRun:
    """The file's blocks in order, in one working directory with one service; stops at the first
    block that fails."""
    workdir = make_workdir(folder / "clone")
    timings: list[str] = []
    with token_service(workdir) as port:
        context = Context(workdir, {SERVICE_PORT: port},
                          postgres=(lambda: new_database(postgres)) if postgres else None)
        env = environment(python_bin())
        for block in read_blocks(doc):
            if not block.runs and block.file is None:
                continue
            started = time.monotonic()
            failure = run_block(block, context, env)
            timings.append(f"{block.where} ({block.language}): {time.monotonic() - started:.1f} s")
            if failure is not None:
                return DocRun(failure, tuple(timings))
    return DocRun(None, tuple(timings))


@pytest.fixture(scope="module")
def doc_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        dict[str, Future[DocRun]]]:
    """Starts every selected file at once, PARALLEL at a time, the files with the most blocks first."""
    selected = [str(item.callspec.params["doc"]) for item in request.session.items
                if isinstance(item, pytest.Function) and item.originalname == TEST_NAME]
    selected.sort(key=lambda doc: -sum(b.runs for b in read_blocks(doc)))
    needs_postgres = any(re.search(POSTGRES, b.text) for doc in selected for b in read_blocks(doc) if b.runs)
    postgres: str | None = request.getfixturevalue("postgres_url") if needs_postgres else None
    with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="docs") as pool:
        futures = {doc: pool.submit(run_doc, doc, tmp_path_factory.mktemp(doc.replace("/", "_")), postgres)
                   for doc in selected}
        yield futures


@pytest.mark.parametrize("doc", RUN_DOCS)
def test_the_documented_commands_and_snippets_work(doc: str, doc_runs: dict[str, Future[DocRun]]) -> None:
    result = doc_runs[doc].result()
    print("\n".join(result.timings))
    if result.failure is not None:
        pytest.fail(str(result.failure), pytrace=False)


TEST_NAME = test_the_documented_commands_and_snippets_work.__name__
