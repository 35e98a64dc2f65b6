#!/usr/bin/env bash
# Installs the service, the client and the examples into .venv, then runs the main job: the
# service on its embedded SQLite default with local workers training the digits MLP by PBT.
# Usage: scripts/demo.sh [--workers N --population N --generations N ...]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# PYTHONWARNINGS: setuptools prints a warning box on every editable install of a flat layout.
PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q -e '.[server,examples,results]'
exec .venv/bin/python -m examples.demo "$@"
