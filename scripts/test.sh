#!/usr/bin/env bash
# Installs everything the tests need (a PostgreSQL server included) into .venv and runs them; a
# skipped test fails the run (tests/no_skips.py).
# Usage: scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use for real: a PostgreSQL server, espeak-ng (the WaveNet example's speech),
# and headless Chromium with its WebDriver (the dashboard's browser test).
have_postgres() { command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
missing=()
have_postgres || missing+=(postgresql)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "The tests need ${missing[*]}: install them first (sudo apt-get install ${missing[*]})." >&2
    exit 1
  fi
  echo "installing ${missing[*]} (apt-get)..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin postgres
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# PYTHONWARNINGS: setuptools prints a warning box on every editable install of a flat layout.
PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q -e ".[server,dev,examples,bench,results,dashboard,ray]"
exec .venv/bin/python -m pytest -q "$@"
