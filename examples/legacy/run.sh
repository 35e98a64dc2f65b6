#!/usr/bin/env bash
# The legacy example end to end: a PBT service on a local SQLite file, two pbt-worker processes
# driving the unchanged train.py/evaluate.py, then the best trial and its schedule.
# Usage (from anywhere, with the project installed: pip install -e .):
#   bash examples/legacy/run.sh            # PYTHON=.venv/bin/python PORT=50061 RUNS=runs/legacy
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
PORT=${PORT:-50061}
RUNS=${RUNS:-runs/legacy}
STUDY=${STUDY:-legacy-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$RUNS"

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

workers=()
for _ in 1 2; do
  "$PYTHON" -m worker_client.cli --service "127.0.0.1:$PORT" --study "$STUDY" \
    --create-study examples/legacy/study.json --workdir "$RUNS" \
    --checkpoint-regex 'model_step_(\d+)\.npz' \
    --evaluator "$PYTHON examples/legacy/evaluate.py --checkpoint {checkpoint}" \
    -- "$PYTHON" examples/legacy/train.py --lr {lr} --momentum {momentum} \
       --init {warm_start} --out {model_dir} --steps {steps} &
  workers+=($!)
done
for pid in "${workers[@]}"; do wait "$pid"; done

results=("$PYTHON" -m worker_client.results_cli --service "127.0.0.1:$PORT")
best=$("${results[@]}" best "$STUDY" --top 1)
echo "best: $best"
"${results[@]}" schedule "$(echo "$best" | awk '{print $2}')"
