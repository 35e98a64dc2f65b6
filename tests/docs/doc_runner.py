"""Runs the blocks of one markdown file in order, as a reader following along would: one working
directory for the file (the repository's files, its own `runs/`), PATH with the venv first,
`PBT_AUTH_TOKEN` set, a token-protected service where the docs say `localhost:50051`, and the
placeholders a reader fills in filled in (`SUBSTITUTIONS`).

Servers: a command line that starts `pbt-service serve` or `pbt-dashboard` (after `VAR=value`s)
runs in the background (a trailing `&` is the same) until its port answers; the rest of the block
runs; then it gets SIGTERM and must exit 0. It must name its `--port`. A block that serves the
docs' port 50051 itself gets a port of its own, so that it does not meet the test's service.

`pip` is tests/docs/pip_stand_in.py: a documented `pip install '.[EXTRAS]'` is checked (the extras
exist), not run, since the venv is shared and has every extra already.

A failing block stops its file: the Failure names the markdown line of the command that failed
(from bash's ERR trap, a transcript's exit check, or the traceback of a snippet, whose line numbers
are the file's), the command, and the end of its stderr and stdout.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from tests.docs.doc_blocks import CONSOLE, PYTHON, ROOT, SHELL, Block, logical_lines, split_comment, transcript

TOKEN = "secret"
"""The service's token; the docs' commands get it from PBT_AUTH_TOKEN, as the README says."""
SERVICE_PORT = 50051
"""Where the docs' service is (`localhost:50051`): the test's own token-protected service."""
BLOCK_TIMEOUT = 240.0
TAIL_LINES = 40
COPIED = ("examples", "benchmarks", "scripts")
"""Copied into each working directory (code that writes beside itself); the rest is linked."""
NOT_LINKED = frozenset({".git", "runs", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", *COPIED})
PIP_STAND_IN = Path(__file__).resolve().parent / "pip_stand_in.py"
LEGACY_STUDY = ROOT / "examples" / "legacy" / "study.json"


@dataclass
class Context:
    """What one markdown file's blocks share: the working directory, the test's service, the ports."""

    workdir: Path
    ports: dict[int, int]
    """Documented port -> the port of this run (SERVICE_PORT -> the test's service)."""
    postgres: Callable[[], str] | None = None
    """A fresh PostgreSQL database for this file (URL), when the test has a server."""
    _database: str | None = field(default=None, repr=False)

    def port(self, documented: int) -> int:
        if documented not in self.ports:
            self.ports[documented] = free_port()
        return self.ports[documented]

    def postgres_url(self) -> str:
        if self._database is None:
            if self.postgres is None:
                raise RuntimeError("this document needs PostgreSQL and the test gave it none")
            self._database = self.postgres()
        return self._database

    def small_legacy_study(self) -> str:
        """examples/legacy/study.json with population 2 and 2 generations of 50 steps."""
        path = self.workdir / ".docs-test" / "legacy-study.json"
        if not path.exists():
            config = json.loads(LEGACY_STUDY.read_text())
            config["algorithm"].update(populationSize=2, maxGenerations=2, stepsPerTrial=50)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(config))
        return str(path)


@dataclass(frozen=True)
class Substitution:
    """What a reader fills in, or a size a test shrinks: a regular expression and its replacement."""

    why: str
    pattern: str
    replace: Callable[[re.Match[str], Context], str]
    docs: tuple[str, ...] = ()
    """Only in these files (all when empty)."""


SUBSTITUTIONS: tuple[Substitution, ...] = (
    Substitution("the documented ports: free ports of this run (50051: the test's token-protected service)",
                 r"\b(50051|50052|50061|50062|8080|8081)\b", lambda m, c: str(c.port(int(m[1])))),
    Substitution("the docs' PostgreSQL server `db`: an empty database on the test's server",
                 r"(postgresql(?:\+psycopg2)?)://pbt:secret@db/pbt",
                 lambda m, c: m[1] + "://" + c.postgres_url().split("://", 1)[1]),
    Substitution("an absolute directory the reader picks: one inside the working directory",
                 r"/tmp/doc\b", lambda m, c: str(c.workdir / "tmp-doc")),
    Substitution("sizes only: the legacy study with population 2 and 2 generations of 50 steps",
                 r"examples/legacy/study\.json", lambda m, c: c.small_legacy_study()),
    Substitution("a trial id the reader reads off the line above: one of the smaller study",
                 r"schedule 44\b", lambda m, c: "schedule 4", docs=("examples/legacy/README.md",)),
    Substitution("a trial id the reader reads off the line above: one of the first two trials",
                 r"schedule 21\b", lambda m, c: "schedule 2", docs=("examples/wavenet/README.md",)),
    Substitution("sizes only: a WaveNet worker stops after one trial", r"(--study wavenet --workers 2)",
                 lambda m, c: m[1] + " --max-trials 1"),
    Substitution("sizes only: the example demos train population 4 for 2 generations",
                 r"--population \d+ --generations \d+", lambda m, c: "--population 4 --generations 2",
                 docs=("examples/digits/README.md", "examples/noisy_quadratic/README.md", "examples/toy/README.md")),
    Substitution("sizes only: the digits study of the snippet, population 4 for 2 generations",
                 r"population_size=\d+, max_generations=\d+", lambda m, c: "population_size=4, max_generations=2",
                 docs=("examples/digits/README.md",)),
)


def substitute(text: str, doc: str, context: Context) -> str:
    """The text with every substitution of `doc` made."""
    for rule in SUBSTITUTIONS:
        if not rule.docs or doc in rule.docs:
            text = re.sub(rule.pattern, _replacer(rule, context), text)
    return text


def _replacer(rule: Substitution, context: Context) -> Callable[[re.Match[str]], str]:
    return lambda match: rule.replace(match, context)


_ports_lock = threading.Lock()
_handed_out: set[int] = set()


def free_port() -> int:
    """A free port, never the same twice in this process (files run in parallel threads)."""
    with _ports_lock:
        while True:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port: int = sock.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port


def make_workdir(path: Path) -> Path:
    """The repository as a reader's clone looks to the docs: linked, with COPIED copied and no runs/."""
    path.mkdir(parents=True, exist_ok=True)
    for entry in ROOT.iterdir():
        if entry.name in COPIED:
            shutil.copytree(entry, path / entry.name, ignore=shutil.ignore_patterns("__pycache__"))
        elif entry.name not in NOT_LINKED and not entry.name.endswith(".egg-info"):
            (path / entry.name).symlink_to(entry)
    return path


def environment(bin_dir: Path) -> dict[str, str]:
    """The caller's environment without PBT_* settings or PYTHONPATH, the venv first on PATH, the token set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBT_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PBT_AUTH_TOKEN"] = TOKEN
    return env


SHELL_PRELUDE = r"""
__docs_servers=()
__docs_await() {  # PID PORT: wait until the server listens; fail when it exits first
  __docs_servers+=("$1")
  local i
  for ((i = 0; i < 600; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    kill -0 "$1" 2>/dev/null || { echo "docs-test: the server exited before it listened on port $2" >&2; return 1; }
    sleep 0.1
  done
  echo "docs-test: nothing listens on port $2 after 60 s" >&2
  return 1
}
__docs_stop() {  # SIGTERM to every server; each must exit 0
  local pid status=0
  for pid in "${__docs_servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${__docs_servers[@]}"; do
    wait "$pid" || { echo "docs-test: a server (pid $pid) exited $? after SIGTERM, not 0" >&2; status=1; }
  done
  return $status
}
trap '__docs_status=$?; __docs_stop || __docs_status=1; exit $__docs_status' EXIT
pip() { python "__PIP__" "$@"; }
"""
"""Run before a block: server bookkeeping, and `pip` checking what it would install instead of installing
into the shared venv (tests/docs/pip_stand_in.py)."""

SHELL_STRICT = """set -euo pipefail
trap 'echo "docs-test: script line $LINENO failed (exit $?): $BASH_COMMAND" >&2' ERR
"""
CONSOLE_CHECK = """set -uo pipefail
__docs_check() {  # STATUS EXPECTED LINE
  [ "$1" -eq "$2" ] || { echo "docs-test: script line $3: exit $1, the transcript says $2" >&2; exit 1; }
}
"""


def server_port(line: str) -> int | None:
    """The port of a command line that starts a server (pbt-service serve, pbt-dashboard), else None.
    Raises ValueError for a server line without --port."""
    code = " ".join(split_comment(part.rstrip("\\").rstrip())[0] for part in line.splitlines())
    try:
        words = shlex.split(code)
    except ValueError:
        return None
    while words and re.match(r"^\w+=", words[0]):
        words.pop(0)
    if words[:2] != ["pbt-service", "serve"] and words[:1] != ["pbt-dashboard"]:
        return None
    if "--port" not in words[:-1]:
        raise ValueError(f"a server line must name its --port: {code}")
    return int(words[words.index("--port") + 1])


def served_ports(block: Block) -> set[int]:
    """The documented ports that the block's server lines serve."""
    if block.language not in (*SHELL, CONSOLE):
        return set()
    lines = [c.text for c in transcript(block)] if block.language == CONSOLE else [
        line for _, line in logical_lines(block.text, block.line + 1)]
    found: set[int] = set()
    for line in lines:
        try:
            port = server_port(line)
        except ValueError:
            continue
        if port is not None:
            found.add(port)
    return found


def _backgrounded(line: str) -> str:
    """The line with a trailing `&` (before its comment), once."""
    lines = line.split("\n")
    code, comment = split_comment(lines[-1])
    lines[-1] = f"{code.removesuffix('&').rstrip()} &  {comment}".rstrip()
    return "\n".join(lines)


@dataclass(frozen=True)
class Script:
    text: str
    lines: dict[int, int]
    """Script line -> markdown line."""


def shell_script(block: Block, text: str) -> Script:
    """A bash script for a `bash` or `console` block whose text is already substituted."""
    head = (SHELL_PRELUDE.replace("__PIP__", str(PIP_STAND_IN))
            + (CONSOLE_CHECK if block.language == CONSOLE else SHELL_STRICT))
    out = head.splitlines()
    lines: dict[int, int] = {}

    def emit(code: str, markdown_line: int) -> None:
        for offset, part in enumerate(code.split("\n")):
            out.append(part)
            lines[len(out)] = markdown_line + offset

    commands: list[tuple[int, str, int | None]]
    if block.language == CONSOLE:
        commands = [(c.line, c.text, c.exit_code) for c in transcript(replace(block, text=text))]
    else:
        commands = [(start, line, None) for start, line in logical_lines(text, block.line + 1)]
    for start, line, expected in commands:
        port = server_port(line)
        first = len(out) + 1
        emit(_backgrounded(line) if port is not None else line, start)
        if expected is not None:
            emit(f"__docs_check $? {expected} {first}", start)
        if port is not None:
            emit(f"__docs_await $! {port}", start)
    return Script("\n".join(out) + "\n", lines)


PYTHON_RUNNER = "import sys; exec(compile(sys.stdin.read(), sys.argv[1], 'exec'))"
"""`python -c` semantics (the working directory importable, __name__ == '__main__'), and tracebacks that
name the markdown file and line: the code comes padded with blank lines to its place in the file."""


@dataclass(frozen=True)
class Failure:
    block: Block
    message: str

    def __str__(self) -> str:
        return f"{self.block.where} ({self.block.language}) failed: {self.message}"


def _tail(path: Path) -> str:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    shown = lines[-TAIL_LINES:]
    return "\n".join(("    ..." if len(lines) > TAIL_LINES else "    (empty)" if not lines else "").splitlines()
                     + [f"    {line}" for line in shown])


def _command_at(block: Block, line: int) -> tuple[int, list[str]]:
    """The markdown line where the command that holds `line` starts, and its lines (with its `\\`
    continuations)."""
    body = block.text.splitlines()
    first = last = line - block.line - 1
    if not 0 <= first < len(body):
        return line, []
    while first > 0 and body[first - 1].rstrip().endswith("\\"):
        first -= 1
    while last < len(body) - 1 and body[last].rstrip().endswith("\\"):
        last += 1
    return block.line + 1 + first, body[first:last + 1]


def _script_line(stderr: str, script: Script) -> int | None:
    found = re.findall(r"docs-test: script line (\d+)", stderr)
    return script.lines.get(int(found[-1])) if found else None


def run_block(block: Block, context: Context, env: dict[str, str]) -> Failure | None:
    """Runs (or, for a `file:` block, writes) one block; a Failure names the markdown line, the
    command and the tail of its output."""
    if SERVICE_PORT in served_ports(block):  # a block that starts its own service on the docs' port
        context = replace(context, ports={**context.ports, SERVICE_PORT: free_port()})
    text = substitute(block.text, block.doc, context)
    if block.file is not None:
        target = context.workdir / block.file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return None
    logs = context.workdir / ".docs-test"
    logs.mkdir(exist_ok=True)
    stem = f"{block.doc.replace('/', '_')}-{block.line}"
    script: Script | None = None
    if block.language in (*SHELL, CONSOLE):
        try:
            script = shell_script(block, text)
        except ValueError as error:
            return Failure(block, str(error))
        argv, stdin = ["bash", "-c", script.text, block.doc], ""
    elif block.language == PYTHON:
        argv, stdin = ["python", "-c", PYTHON_RUNNER, str(ROOT / block.doc)], "\n" * block.line + text
    else:
        return None
    out_path, err_path = logs / f"{stem}.out", logs / f"{stem}.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        process = subprocess.Popen(argv, cwd=context.workdir, env=env, stdin=subprocess.PIPE, stdout=out,
                                   stderr=err, text=True, start_new_session=True)
        try:
            process.communicate(stdin, timeout=BLOCK_TIMEOUT)
            status: int | str = process.returncode
        except subprocess.TimeoutExpired:
            status = f"still running after {BLOCK_TIMEOUT:.0f} s (killed)"
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # whatever the block left behind
            except ProcessLookupError:
                pass
            process.wait()
    if status == 0:
        return None
    stderr = err_path.read_text(errors="replace")
    where = _script_line(stderr, script) if script is not None else None
    if where is None and block.language == PYTHON:
        found = re.findall(rf'File "{re.escape(str(ROOT / block.doc))}", line (\d+)', stderr)
        where = int(found[-1]) if found else None
    if where is not None:
        first, command = _command_at(block, where)
        shown = f" at {block.doc}:{first}\n" + "\n".join(f"    {line}" for line in command)
    else:
        shown = "\n" + "\n".join(f"    {line}" for line in text.splitlines())
    return Failure(block, f"exit {status}{shown}\n  --- stderr ---\n{_tail(err_path)}\n"
                          f"  --- stdout ---\n{_tail(out_path)}")


def python_bin() -> Path:
    return Path(sys.executable).parent
