"""`pip` for the docs test: checks a documented `pip install` of this project (the path holds it, the
extras exist) and installs nothing, since the test's venv is shared and already has every extra.

    pip install [-e] [-q] [-U] '.[server,examples]'
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

FLAGS = frozenset({"-e", "--editable", "-q", "--quiet", "-U", "--upgrade"})
SPEC = re.compile(r"^(?P<path>\.{1,2}(?:/[\w./-]*)?)(?:\[(?P<extras>[\w,-]+)\])?$")


def optional_dependencies(pyproject: str) -> set[str]:
    """The extras named in pyproject.toml's [project.optional-dependencies] (tomllib is 3.11+)."""
    section = re.search(r"^\[project\.optional-dependencies\]\n(.*?)(?=^\[)", pyproject + "\n[", re.M | re.S)
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*=", section.group(1), re.M)) if section else set()


def check(argv: list[str], cwd: Path) -> str | None:
    """What is wrong with `pip ARGV` run in `cwd`, or None."""
    if not argv or argv[0] != "install":
        return f"only `pip install` of this project is documented, not `pip {' '.join(argv)}`"
    specs = [a for a in argv[1:] if a not in FLAGS]
    if not specs or any(a.startswith("-") for a in specs):
        return f"unknown pip options or nothing to install: {' '.join(argv)}"
    for spec in specs:
        found = SPEC.match(spec)
        if not found:
            return f"{spec!r}: install the project from its clone, as `pip install '.[EXTRA]'`"
        project = cwd / found["path"] / "pyproject.toml"
        if not project.is_file():
            return f"{spec!r}: no pyproject.toml in {project.parent}"
        extras = optional_dependencies(project.read_text())
        unknown = sorted(set(filter(None, (found["extras"] or "").split(","))) - set(extras))
        if unknown:
            return f"{spec!r}: no extra {', '.join(unknown)} (the project has {', '.join(sorted(extras))})"
    return None


if __name__ == "__main__":
    problem = check(sys.argv[1:], Path.cwd())
    if problem:
        print(f"pip (docs test): {problem}", file=sys.stderr)
        sys.exit(1)
    print(f"pip (docs test): would install {' '.join(sys.argv[2:])}")
