"""The test command fails when any test skips, and says which and why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.worker_client.conftest import ROOT, subprocess_env


def _pytest(folder: Path, body: str) -> subprocess.CompletedProcess[str]:
    (folder / "test_probe.py").write_text(body)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.no_skips", "-p", "no:cacheprovider",
         "--rootdir", str(folder), str(folder / "test_probe.py")],
        capture_output=True, text=True, env=subprocess_env(), cwd=ROOT, timeout=120,
    )


def test_a_skip_fails_the_run_and_is_named(tmp_path: Path) -> None:
    done = _pytest(tmp_path, "import pytest\n\ndef test_ok():\n    pass\n\n"
                             "def test_skips():\n    pytest.skip('chromium missing')\n")
    assert done.returncode == 1, done.stdout
    assert "skipped tests fail the run" in done.stdout
    assert "test_probe.py::test_skips: Skipped: chromium missing" in done.stdout


def test_a_run_without_skips_passes(tmp_path: Path) -> None:
    done = _pytest(tmp_path, "def test_ok():\n    pass\n")
    assert done.returncode == 0, done.stdout
    assert "skipped tests fail the run" not in done.stdout
