"""The committed generated code matches the .proto files (regenerate with scripts/gen_protos.sh)."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "pbt_service" / "api" / "v1"
BIN = Path(sys.executable).parent


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    out = tmp_path / "protos"
    gen = tmp_path / "gen"
    gen.mkdir()
    shutil.copytree(ROOT / "protos", out, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", str(out),
         f"--plugin=protoc-gen-mypy={BIN / 'protoc-gen-mypy'}",
         f"--plugin=protoc-gen-mypy_grpc={BIN / 'protoc-gen-mypy_grpc'}",
         f"--python_out={gen}", f"--grpc_python_out={gen}", f"--mypy_out={gen}", f"--mypy_grpc_out={gen}",
         *map(str, sorted((out / "pbt_service" / "api" / "v1").glob("*.proto")))],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    fresh = gen / "pbt_service" / "api" / "v1"
    names = sorted(p.name for p in fresh.glob("*_pb2*"))
    assert names == sorted(p.name for p in GENERATED.glob("*_pb2*") if p.suffix in (".py", ".pyi"))
    stale = [n for n in names if not filecmp.cmp(fresh / n, GENERATED / n, shallow=False)]
    assert stale == [], f"run scripts/gen_protos.sh: {stale} differ from the .proto files"
