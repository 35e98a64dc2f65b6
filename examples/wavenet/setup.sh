#!/usr/bin/env bash
# Installs what the WaveNet example needs beyond the project: espeak-ng (Debian/Ubuntu package)
# to synthesize the speech, and the `examples` extra (torch) into the current Python.
set -euo pipefail
if ! command -v espeak-ng >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq espeak-ng
fi
PYTHON=${PYTHON:-python3}
"$PYTHON" -c "import torch" 2>/dev/null || "$PYTHON" -m pip install -q -e "$(dirname "$0")/../..[examples]"
espeak-ng --version
