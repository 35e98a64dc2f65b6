#!/usr/bin/env bash
# The WaveNet example end to end: espeak-ng speech, a PBT service on a local SQLite file, two
# Python-mode workers tuning Adam's learning rate, then the best trial and its schedule.
# Usage (from anywhere):
#   bash examples/wavenet/run.sh           # PYTHON=.venv/bin/python PORT=50062 RUNS=runs/wavenet
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
PORT=${PORT:-50062}
RUNS=${RUNS:-runs/wavenet}
STUDY=${STUDY:-wavenet-$(date +%Y%m%d-%H%M%S)}
export WAVENET_DATA="$RUNS/data"
mkdir -p "$RUNS"

PYTHON="$PYTHON" bash examples/wavenet/setup.sh
"$PYTHON" -m examples.wavenet.data --out "$WAVENET_DATA"

"$PYTHON" -m pbt_service.cli migrate --database-url "sqlite:///$RUNS/pbt.db" >"$RUNS/migrate.log" 2>&1 ||
  { cat "$RUNS/migrate.log"; exit 1; }
"$PYTHON" -m pbt_service.cli serve --database-url "sqlite:///$RUNS/pbt.db" --host 127.0.0.1 --port "$PORT" \
  --retry-after-seconds 0.2 >"$RUNS/service.log" 2>&1 &
service=$!
trap 'kill "$service" 2>/dev/null || true' EXIT
until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do  # wait for the port; fail if the service died
  kill -0 "$service" 2>/dev/null || { tail -5 "$RUNS/service.log"; exit 1; }
  sleep 0.2
done

"$PYTHON" -m examples.wavenet.job --service "127.0.0.1:$PORT" --study "$STUDY" --workdir "$RUNS" --workers 2

results=("$PYTHON" -m worker_client.results_cli --service "127.0.0.1:$PORT")
best=$("${results[@]}" best "$STUDY" --top 1)
echo "best: $best"
"${results[@]}" schedule "$(echo "$best" | awk '{print $2}')"
