"""The fenced code blocks of the project's markdown files, read the way tests/docs runs them.

Languages:
    bash, sh   a script: run with bash -euo pipefail in the document's working directory
    console    a transcript: each `$ ` line is a command (`\\` continues it), the lines after it are
               its recorded output (not compared); an output line ending `(exit N)` says that the
               command exits N, any other command must exit 0
    python     run with the venv's python from the working directory (`python -c` semantics: the
               working directory is importable, `__name__` is "__main__")
    json, sql  data: json blocks are loaded as what they show (a StudyConfig or a replay plan); sql
               blocks are docs/schema.md's queries, run by tests/store/test_schema_docs.py
    text, ""   diagrams and output: they must not hold a command (`pbt-...`, `python ...`, ...)

Markers: HTML comments on the lines right above a fence (GitHub does not show them):
    <!-- docs-test: skip: REASON -->   not run, for the reason given; the flags of its commands are
                                       still checked against the programs' parsers
    <!-- docs-test: file: PATH -->     a file the reader saves where the prose before it says: written
                                       to PATH in the working directory, run by a later block
    <!-- query: NAME --> / <!-- setup: NAME -->   docs/schema.md's SQL (tests/store/test_schema_docs.py)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC_PATTERNS = (
    "README.md", "docs/*.md", "examples/README.md", "examples/*/README.md", "benchmarks/README.md",
    "benchmarks/*/README.md",
)
SHELL = frozenset({"bash", "sh"})
CONSOLE = "console"
PYTHON = "python"
DATA = frozenset({"json", "sql"})
PROSE = frozenset({"", "text"})
COMMAND_STARTS = ("pbt-", "python", ".venv/", "pip ", "bash ", "sh ", "scripts/", "docker", "PYTHONPATH=",
                  "PBT_", "time ")
"""What a line that is a command begins with: an untagged or `text` block must not."""
SKIP, FILE = "skip", "file"
SCHEMA_MARKERS = frozenset({"query", "setup"})
MIN_REASON = 20
"""A skip reason says what the block needs or why it cannot run here, in a sentence."""

_FENCE = re.compile(r"^(`{3,})([\w+-]*)\s*$")
_MARKER = re.compile(r"^<!-- (docs-test|query|setup): (.*?) -->\s*$")
_EXIT = re.compile(r"\(exit (\d+)\)\s*$")


@dataclass(frozen=True)
class Marker:
    kind: str
    """`skip`, `file`, `query` or `setup`."""
    value: str


@dataclass(frozen=True)
class Block:
    doc: str
    """The markdown file, relative to the repository."""
    line: int
    """1-based line of the opening fence; the block's first line is line + 1."""
    language: str
    text: str
    markers: tuple[Marker, ...]
    prose: str
    """The markdown between the previous block and this one."""

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    def marker(self, kind: str) -> str | None:
        return next((m.value for m in self.markers if m.kind == kind), None)

    @property
    def skip_reason(self) -> str | None:
        return self.marker(SKIP)

    @property
    def file(self) -> str | None:
        return self.marker(FILE)

    @property
    def runs(self) -> bool:
        """Executed by the docs test (a saved file runs through a later block)."""
        return self.language in (*SHELL, CONSOLE, PYTHON) and self.skip_reason is None and self.file is None


def doc_files() -> list[str]:
    """Every documented markdown file, relative to the repository, in a stable order."""
    found = {path for pattern in DOC_PATTERNS for path in ROOT.glob(pattern)}
    return sorted(str(path.relative_to(ROOT)) for path in found)


def read_blocks(doc: str, text: str | None = None) -> list[Block]:
    """The fenced blocks of one markdown file (read from the repository unless `text` is given)."""
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines() if text is None else text.splitlines()
    blocks: list[Block] = []
    prose_start = 0
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, language = opening.groups()
        end = index + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        if end == len(lines):
            raise ValueError(f"{doc}:{index + 1}: the fence is never closed")
        markers: list[Marker] = []
        above = index - 1
        while above >= 0 and (found := _MARKER.match(lines[above])):
            kind, value = found.groups()
            if kind == "docs-test":
                kind, _, value = value.partition(":")
                kind, value = kind.strip(), value.strip()
            markers.insert(0, Marker(kind, value))
            above -= 1
        blocks.append(Block(doc, index + 1, language, "\n".join(lines[index + 1:end]) + "\n", tuple(markers),
                            "\n".join(lines[prose_start:above + 1])))
        prose_start = end + 1
        index = end + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for doc in doc_files() for block in read_blocks(doc)]


def problems(block: Block) -> list[str]:
    """What is wrong with a block's language or markers, as messages naming the block."""
    found: list[str] = []
    known = {*SHELL, CONSOLE, PYTHON, *DATA, *PROSE}
    if block.language not in known:
        found.append(f"{block.where}: unknown language {block.language!r} (one of {sorted(known)})")
    for marker in block.markers:
        if marker.kind == SKIP and len(marker.value) < MIN_REASON:
            found.append(f"{block.where}: a skip needs its reason: <!-- docs-test: skip: WHY IT CANNOT RUN -->")
        elif marker.kind == FILE and (not marker.value or marker.value.startswith(("/", ".."))):
            found.append(f"{block.where}: file: needs a relative path, got {marker.value!r}")
        elif marker.kind in SCHEMA_MARKERS and block.language != "sql":
            found.append(f"{block.where}: <!-- {marker.kind}: --> marks docs/schema.md's sql blocks only")
        elif marker.kind not in (SKIP, FILE, *SCHEMA_MARKERS):
            found.append(f"{block.where}: unknown marker docs-test: {marker.kind}")
    if block.file is not None and block.file not in block.prose:
        found.append(f"{block.where}: the prose above the block must tell the reader to save it as {block.file}")
    if block.language == "sql" and not any(m.kind in SCHEMA_MARKERS for m in block.markers):
        found.append(f"{block.where}: an sql block needs <!-- query: NAME --> so that "
                     "tests/store/test_schema_docs.py runs it")
    if block.language in PROSE:
        for number, line in enumerate(block.text.splitlines(), start=block.line + 1):
            stripped = line.strip()
            first_or_prompt = number == block.line + 1 or stripped.startswith("$ ")
            if first_or_prompt and stripped.removeprefix("$ ").startswith(COMMAND_STARTS):
                found.append(f"{block.doc}:{number}: a command in a {block.language or 'untagged'} block: tag the "
                             "block bash or console (or mark it <!-- docs-test: skip: REASON -->)")
    return found


@dataclass(frozen=True)
class Command:
    """One command of a transcript: its text (continuations joined by newlines), where it starts, and
    the exit status its recorded output shows."""

    text: str
    line: int
    exit_code: int


def transcript(block: Block) -> list[Command]:
    """The commands of a `console` block."""
    commands: list[Command] = []
    current: list[str] = []
    start = 0
    expected = 0
    continued = False
    for number, line in enumerate(block.text.splitlines(), start=block.line + 1):
        if continued:
            current.append(line)
        elif line.startswith("$ "):
            if current:
                commands.append(Command("\n".join(current), start, expected))
            current, start, expected = [line[2:]], number, 0
        elif current and (code := _EXIT.search(line)):
            expected = int(code.group(1))
        continued = (continued or line.startswith("$ ")) and line.rstrip().endswith("\\")
    if current:
        commands.append(Command("\n".join(current), start, expected))
    return commands


def logical_lines(text: str, first_line: int) -> Iterator[tuple[int, str]]:
    """Shell lines with their `\\` continuations joined by newlines, each with its first line number."""
    pending: list[str] = []
    start = first_line
    for number, line in enumerate(text.splitlines(), start=first_line):
        if not pending:
            start = number
        pending.append(line)
        if not line.rstrip().endswith("\\"):
            yield start, "\n".join(pending)
            pending = []
    if pending:
        yield start, "\n".join(pending)


def split_comment(line: str) -> tuple[str, str]:
    """A shell line's code and its trailing `# comment` (a `#` outside quotes after a blank)."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return line[:index].rstrip(), line[index:]
    return line.rstrip(), ""


def shell_commands(block: Block) -> list[tuple[int, str]]:
    """The command lines of a shell or console block, comments dropped, continuations joined."""
    if block.language == CONSOLE:
        lines = [(c.line, c.text) for c in transcript(block)]
    else:
        lines = list(logical_lines(block.text, block.line + 1))
    found: list[tuple[int, str]] = []
    for number, line in lines:
        code = " ".join(split_comment(part.rstrip("\\").rstrip())[0] for part in line.splitlines())
        if code.strip():
            found.append((number, code.strip()))
    return found
