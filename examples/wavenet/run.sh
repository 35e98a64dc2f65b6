#!/usr/bin/env bash
# The WaveNet example end to end: espeak-ng speech, a PBT service on a local SQLite file, two
# Python-mode workers tuning Adam's learning rate, then the best trial and its schedule.
# Usage (from anywhere):
#   bash examples/wavenet/run.sh           # PYTHON=(.venv/bin/python if it exists) PORT=50062 RUNS=runs/wavenet
set -euo pipefail
cd "$(dirname "$0")/../.."
source examples/local_service.sh
choose_python
PORT=${PORT:-50062}
RUNS=${RUNS:-runs/wavenet}
STUDY=${STUDY:-wavenet-$(date +%Y%m%d-%H%M%S)}
export WAVENET_DATA="$RUNS/data"
mkdir -p "$RUNS"

PYTHON="$PYTHON" bash examples/wavenet/setup.sh
"$PYTHON" -m examples.wavenet.data --out "$WAVENET_DATA"

start_local_service

"$PYTHON" -m examples.wavenet.job --service "127.0.0.1:$PORT" --study "$STUDY" --workdir "$RUNS" --workers 2

show_best "$STUDY"
