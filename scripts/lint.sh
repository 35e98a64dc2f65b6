#!/usr/bin/env bash
# Static checks: ruff, then strict mypy over the packages and the tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

.venv/bin/ruff check .
.venv/bin/mypy --explicit-package-bases tests
.venv/bin/mypy pbt_service worker_client examples benchmarks
