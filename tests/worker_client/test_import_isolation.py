"""`import worker_client` (and each of its modules) must not pull the server, the store, SQLAlchemy
or the server-only gRPC packages into a training job, and the client's modules import each other
without cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "worker_client"

def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


FILES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
MODULES = sorted(FILES)
FORBIDDEN_TOP = ("sqlalchemy", "alembic", "psycopg2", "grpc_health", "grpc_reflection", "torch", "ray")
"""`ray` too: `worker_client.ray_launcher` and `ray_cli` import it only when workers start."""
FORBIDDEN_PREFIXES = ("pbt_service.store", "pbt_service.service", "pbt_service.server", "pbt_service.controller")
OPTIONAL = {"worker_client.torch_checkpoint": "torch"}
"""Modules that exist to use an optional package, and that package."""

CHECK = f"""
import importlib, sys
import grpc  # grpc itself imports grpc_health and grpc_reflection when they are installed: not ours
baseline = set(sys.modules)
importlib.import_module(sys.argv[1])
allowed = sys.argv[2:]
tops, prefixes = {FORBIDDEN_TOP!r}, {FORBIDDEN_PREFIXES!r}
bad = sorted(m for m in set(sys.modules) - baseline
             if (m.split('.')[0] in tops and m.split('.')[0] not in allowed) or m.startswith(prefixes))
print(','.join(bad))
"""


def test_the_module_list_is_complete() -> None:
    assert {"worker_client", "worker_client.cli", "worker_client.results_cli", "worker_client.replay",
            "worker_client.garbage_collection", "worker_client.settings", "worker_client.ray_launcher",
            "worker_client.ray_cli"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_each_client_module_alone_imports_no_server_code(module: str) -> None:
    allowed = [OPTIONAL[module]] if module in OPTIONAL else []
    result = subprocess.run(
        [sys.executable, "-c", CHECK, module, *allowed],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def imports_of(path: Path) -> set[str]:
    """The worker_client modules a file imports, anywhere in it (functions included)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {id(n) for block in ast.walk(tree) if _is_type_checking_block(block)
                 for n in ast.walk(block)}  # fmt: skip
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("worker_client"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("worker_client"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return found


def _is_type_checking_block(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` imports exist for annotations only and never run."""
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def test_client_modules_import_each_other_without_cycles() -> None:
    graph = {m: imports_of(FILES[m]) for m in MODULES}
    for module, targets in graph.items():
        assert module not in targets, f"{module} imports itself"
        for package in (p for p in MODULES if FILES[p].name == "__init__.py" and module.startswith(p + ".")):
            assert package not in targets, f"{module} imports the package {package}, which imports it back"
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join((*path[path.index(module):], module)))
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, (*path, module))
        done.add(module)

    for module in MODULES:
        visit(module, ())
