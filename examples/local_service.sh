# Sourced by the examples' run.sh: the Python to use, a PBT service on a local SQLite file, and the
# result at the end. Needs PORT and RUNS set; call choose_python first.

# Sets PYTHON, when unset, to the project's .venv (where scripts/demo.sh and scripts/test.sh install
# it) or else python3, and stops with what to do when the project is not installed for it.
choose_python() {
  if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
  fi
  if ! "$PYTHON" -c "import grpc, sqlalchemy, pbt_service, worker_client" 2>/dev/null; then
    echo "$0: the project is not installed for $PYTHON: run scripts/demo.sh once (it installs into .venv)," \
      "or pip install -e '.[server]', or set PYTHON=/path/to/python" >&2
    exit 1
  fi
}

# Starts the service in the background on $RUNS/pbt.db and waits until its port answers; the
# service is stopped when the calling script exits. Fails with the service's log if it dies.
start_local_service() {
  "$PYTHON" -m pbt_service.cli migrate --database-url "sqlite:///$RUNS/pbt.db" >"$RUNS/migrate.log" 2>&1 ||
    { cat "$RUNS/migrate.log"; exit 1; }
  "$PYTHON" -m pbt_service.cli serve --database-url "sqlite:///$RUNS/pbt.db" --host 127.0.0.1 --port "$PORT" \
    --retry-after-seconds 0.2 >"$RUNS/service.log" 2>&1 &
  service=$!
  trap 'kill "$service" 2>/dev/null || true' EXIT
  until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
    kill -0 "$service" 2>/dev/null || { tail -5 "$RUNS/service.log"; exit 1; }
    sleep 0.2
  done
}

# Prints the best trial of study $1 and its hyperparameter schedule.
show_best() {
  local results=("$PYTHON" -m worker_client.results_cli --service "127.0.0.1:$PORT") best
  "${results[@]}" best "$1" --top 1
  # The CSV's first column is the trial id; its second line is the best trial.
  best=$("${results[@]}" best "$1" --top 1 --format csv | awk -F, 'NR == 2 {print $1}')
  "${results[@]}" schedule "$best"
}
