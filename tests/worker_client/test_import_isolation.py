"""`import worker_client` must not pull the server, the store or SQLAlchemy into a training job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_client_imports_no_server_code() -> None:
    code = (
        "import sys, worker_client\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic', 'torch') "
        "or m.startswith(('pbt_service.store', 'pbt_service.service', 'pbt_service.server')))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'protos'}", "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.strip() == ""
