"""The commands the docs show name options and subcommands that exist: every command line of every
bash and console block (skipped ones too) and every `usage:` line is checked against its program's
parser without running anything. `pbt-*` commands are parsed with their own argparse parser;
`python -m MODULE` and `python SCRIPT.py` (the docs' scripts, benchmarks, a `Job` script, the
command after `pbt-worker ... --`) have each `--flag` looked up among the script's `add_argument`
calls. Cheap, and it catches a renamed flag in a block the run test skips."""

from __future__ import annotations

import argparse
import ast
import io
import re
import shlex
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from functools import partial

import pytest

from pbt_service import cli as service_cli
from tests.docs.doc_blocks import (
    CONSOLE,
    PROSE,
    ROOT,
    SHELL,
    Block,
    all_blocks,
    doc_files,
    read_blocks,
    shell_commands,
)
from worker_client import cli as worker_cli
from worker_client import ray_cli, results_cli
from worker_client.dashboard import cli as dashboard_cli

PROGRAMS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "pbt-service": service_cli.parser,
    "pbt-worker": worker_cli.parser,
    "pbt-results": results_cli.parser,
    "pbt-dashboard": dashboard_cli.parser,
    "pbt-ray-workers": ray_cli.parser,
}
JOB = partial(worker_cli.parser, python_job=True)
"""What a `worker_client.Job` script parses (`job.main()`)."""
PYTHONS = frozenset({"python", "python3", ".venv/bin/python"})
OPERATORS = frozenset({"|", "||", "&&", ";", "&"})
PREFIXES = frozenset({"time", "exec"})


@dataclass(frozen=True)
class Invocation:
    where: str
    argv: tuple[str, ...]
    env: tuple[str, ...] = ()
    """The `VAR=value` words before the command."""
    exact: bool = True
    """A command to parse as is; False for a synopsis (`[--save F]`, `S`, `DIR`): only its flags are looked up."""


def invocations(block: Block) -> Iterator[Invocation]:
    """The simple commands of a bash or console block: operators split them, redirections and
    `VAR=value` prefixes are dropped."""
    for line, code in shell_commands(block):
        lexer = shlex.shlex(code, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        argv: list[str] = []
        words = iter(lexer)
        for word in words:
            if word in OPERATORS:
                yield from _command(f"{block.doc}:{line}", argv)
                argv = []
            elif word[0] in "<>":
                next(words, None)  # the redirection's file
            else:
                argv.append(word)
        yield from _command(f"{block.doc}:{line}", argv)


def _command(where: str, argv: list[str], *, exact: bool = True) -> Iterator[Invocation]:
    env: list[str] = []
    while argv and (re.match(r"^\w+=", argv[0]) or argv[0] in PREFIXES):
        env += argv[:1] if "=" in argv[0] else []
        argv = argv[1:]
    if argv:
        yield Invocation(where, tuple(argv), tuple(env), exact)


def inline_commands(doc: str) -> Iterator[Invocation]:
    """Commands quoted in the prose and tables (`pbt-results trial 123`, `python -m examples.demo`),
    as synopses: placeholders and `[optional]` parts allowed."""
    fenced = {n for b in read_blocks(doc) for n in range(b.line, b.line + b.text.count("\n") + 2)}
    for number, line in enumerate((ROOT / doc).read_text().splitlines(), start=1):
        if number in fenced:
            continue
        for span in re.findall(r"`([^`]+)`", line):
            words = re.sub(r"\\\||[\[\]]|\.\.\.", " ", span).split()
            yield from _command(f"{doc}:{number}", words, exact=False)


def saved_files() -> dict[str, str]:
    """What the docs tell the reader to save (`<!-- docs-test: file: PATH -->`), by path."""
    return {b.file: b.text for b in all_blocks() if b.file is not None}


def python_source(argv: tuple[str, ...]) -> tuple[str, str, tuple[str, ...]] | None:
    """(name, source, its arguments) of `python -m MODULE ARGS` or `python SCRIPT ARGS`; a package's
    `__main__` comes with the rest of the package (its parser may live beside it)."""
    if len(argv) < 2 or argv[1] == "-c":
        return None
    module = argv[1] == "-m"
    target, rest = (argv[2], argv[3:]) if module else (argv[1], argv[2:])
    relative = target.replace(".", "/") + ".py" if module else target
    files = saved_files()
    if relative in files:
        return target, files[relative], rest
    path = ROOT / relative
    if module and not path.exists():
        path = ROOT / target.replace(".", "/") / "__main__.py"
    if not path.exists():
        raise FileNotFoundError(f"{target}: no such {'module' if module else 'script'} in the repository or the docs")
    sources = [path] if path.name != "__main__.py" else sorted(path.parent.glob("*.py"))
    return target, "\n".join(p.read_text() for p in sources), rest


def declared_flags(source: str) -> set[str]:
    """The option strings of every `add_argument("--x", ...)` call with literal arguments (and
    `--no-x` for a BooleanOptionalAction)."""
    flags: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            names = {a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
            negated = any(getattr(k.value, "attr", "") == "BooleanOptionalAction" for k in node.keywords)
            flags |= names | ({"--no-" + n[2:] for n in names if n.startswith("--")} if negated else set())
    return flags


def parse(parser: argparse.ArgumentParser, argv: tuple[str, ...]) -> str | None:
    """argparse's complaint about `argv`, or None."""
    errors = io.StringIO()
    try:
        with redirect_stderr(errors), redirect_stdout(io.StringIO()):
            parser.parse_args(list(argv))
    except SystemExit as stop:
        if stop.code not in (0, None):
            return errors.getvalue().strip().splitlines()[-1]
    return None


def unknown_options(program: str, words: tuple[str, ...]) -> list[str]:
    """The `--flags` among `words` that neither the program nor the subcommand named in `words` has."""
    parsers = [PROGRAMS[program]()]
    for action in parsers[0]._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers += [action.choices[w] for w in words if w in action.choices][:1]
    known = {o for p in parsers for a in p._actions for o in a.option_strings}
    return [w for w in words if w.startswith("--") and w.split("=")[0] not in known]


def check(invocation: Invocation) -> list[str]:
    """What is wrong with one documented command (nothing for programs that are not this project's)."""
    argv, where = invocation.argv, invocation.where
    shown = f"{where}: {shlex.join(argv)}\n    "
    if argv[0] in PROGRAMS:
        options, command = worker_cli.split_command(argv[1:]) if argv[0] == "pbt-worker" else (list(argv[1:]), [])
        if not invocation.exact:
            unknown = unknown_options(argv[0], tuple(options))
            return [shown + f"no option {', '.join(unknown)}"] if unknown else []
        problem = parse(PROGRAMS[argv[0]](), tuple(options))
        found = [shown + problem] if problem else []
        if argv[0] == "pbt-worker":
            evaluator = options[options.index("--evaluator") + 1] if "--evaluator" in options else None
            for nested in ([command] if command else []) + ([shlex.split(evaluator)] if evaluator else []):
                found += check(Invocation(where, tuple(nested)))
        return found
    runs_code = len(argv) > 1 and (argv[1] == "-m" or argv[1].endswith(".py"))
    if argv[0] not in PYTHONS or (not invocation.exact and not runs_code):
        return []
    try:
        found_source = python_source(argv)
    except FileNotFoundError as error:
        return [shown + str(error)]
    if found_source is None:
        return []
    name, source, rest = found_source
    if argv[1] != "-m" and re.search(r"^(from|import) (examples|benchmarks)\b", source, re.M) and (
            "PYTHONPATH=." not in invocation.env):
        return [shown + f"{name} imports the repository's packages, which a script run by path cannot see: "
                "write `PYTHONPATH=. python ...` (or python -m)"]
    if "Job(" in source and ".main(" in source:
        problem = parse(JOB(), rest)
        return [shown + problem] if problem else []
    flags = declared_flags(source)
    unknown = [a.split("=")[0] for a in rest if a.startswith("--") and a.split("=")[0] not in flags]
    return [shown + f"{name} has no option {', '.join(unknown)}"] if unknown else []


def usage_problems(block: Block) -> list[str]:
    """`usage: PROGRAM ...` lines of text blocks: each `--flag` exists for the program and subcommand."""
    found: list[str] = []
    for number, line in enumerate(block.text.splitlines(), start=block.line + 1):
        words = tuple(re.sub(r"[\[\]]", " ", line.removeprefix("usage: ")).split())
        if line.startswith("usage: ") and words[0] in PROGRAMS and (unknown := unknown_options(words[0], words)):
            found.append(f"{block.doc}:{number}: {line}\n    no option {', '.join(unknown)}")
    return found


def documented_invocations() -> list[Invocation]:
    return [i for b in all_blocks() if b.language in (*SHELL, CONSOLE) for i in invocations(b)]


def test_every_documented_command_parses() -> None:
    found = [p for i in documented_invocations() for p in check(i)]
    found += [p for b in all_blocks() if b.language in PROSE for p in usage_problems(b)]
    assert not found, "\n".join(found)


def test_every_command_quoted_in_the_prose_has_the_options_it_shows() -> None:
    found = [p for doc in doc_files() for i in inline_commands(doc) for p in check(i)]
    assert not found, "\n".join(found)


def test_the_check_sees_every_program_of_the_project() -> None:
    programs = {i.argv[0] for i in documented_invocations()}
    assert set(PROGRAMS) <= programs
    assert sum(i.argv[0] == "pbt-results" for i in documented_invocations()) >= 30


@pytest.mark.parametrize(("text", "expected"), [
    ("pbt-results --service localhost:50051 trials toy --statuss completed\n", "unrecognized arguments: --statuss"),
    ("pbt-results --service localhost:50051 schedul 37\n", "invalid choice: 'schedul'"),
    ("pbt-worker --service x --study s -- python examples/legacy/train.py --rate {lr}\n", "has no option --rate"),
    ("PYTHONPATH=. python benchmarks/noisy_quadratic_vs_grid.py --seed 3 > out.txt\n", "has no option --seed"),
    ("python -m examples.nothing\n", "no such module"),
    ("python benchmarks/noisy_quadratic_vs_grid.py --seeds 1\n", "write `PYTHONPATH=. python"),
])
def test_a_renamed_flag_or_subcommand_is_caught(text: str, expected: str) -> None:
    block = read_blocks("fake.md", f"```bash\n{text}```\n")[0]
    found = [p for i in invocations(block) for p in check(i)]
    assert len(found) == 1 and expected in found[0], found


def test_a_usage_line_with_an_unknown_flag_is_caught() -> None:
    block = read_blocks("fake.md", "```text\nusage: pbt-results replay P --trainer T --work-dir D\n```\n")[0]
    assert "no option --work-dir" in usage_problems(block)[0]


def test_redirections_and_pipes_split_commands() -> None:
    block = read_blocks("fake.md", "```bash\nPBT_X=1 pbt-results gc toy | tail -3 > f.txt && echo ok\n```\n")[0]
    assert [i.argv for i in invocations(block)] == [("pbt-results", "gc", "toy"), ("tail", "-3"), ("echo", "ok")]
