#!/usr/bin/env bash
# The legacy example end to end: a PBT service on a local SQLite file, two pbt-worker processes
# driving the unchanged train.py/evaluate.py, then the best trial and its schedule.
# Usage (from anywhere, with the project installed: scripts/demo.sh or pip install -e '.[server]'):
#   bash examples/legacy/run.sh            # PYTHON=(.venv/bin/python if it exists) PORT=50061 RUNS=runs/legacy
set -euo pipefail
cd "$(dirname "$0")/../.."
source examples/local_service.sh
choose_python
PORT=${PORT:-50061}
RUNS=${RUNS:-runs/legacy}
STUDY=${STUDY:-legacy-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$RUNS"

start_local_service

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

show_best "$STUDY"
