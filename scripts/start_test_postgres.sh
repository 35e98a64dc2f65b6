#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for repeated test runs and prints the line to use it:
#   eval "$(scripts/start_test_postgres.sh)"   # sets PBT_TEST_POSTGRES_URL
#   .venv/bin/python -m pytest tests/store
#   scripts/start_test_postgres.sh stop
# Without it, tests/conftest.py starts (and stops) a private server for each pytest session.
set -euo pipefail
DIR=${PBT_TEST_POSTGRES_DIR:-/tmp/pbt-test-postgres}
PORT=${PBT_TEST_POSTGRES_PORT:-55432}

bin_dir() {
  if command -v pg_ctl >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v pg_ctl)")"; return; fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$found" ] || { echo "PostgreSQL not found: apt-get install -y postgresql" >&2; exit 1; }
  echo "$found"
}
BIN=$(bin_dir)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ "${1:-start}" = "stop" ]; then
  [ -f "$DIR/data/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >&2
  rm -rf "$DIR"
  exit 0
fi
if [ ! -f "$DIR/data/postmaster.pid" ]; then
  rm -rf "$DIR" && mkdir -p "$DIR"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$DIR"
  as_pg "$BIN/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --no-sync >/dev/null
  as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >&2
  as_pg "$BIN/psql" -h "$DIR" -p "$PORT" -U postgres -q -c "CREATE DATABASE pbt_test" >&2
fi
echo "export PBT_TEST_POSTGRES_URL=postgresql+psycopg2://postgres@127.0.0.1:$PORT/pbt_test"
