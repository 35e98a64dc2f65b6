#!/usr/bin/env bash
# Regenerates the committed gRPC code in pbt_service/api/v1 from protos/pbt_service/api/v1/*.proto
# (the proto package path is the Python package path).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -I protos \
  --plugin=protoc-gen-mypy="$(dirname "$(command -v python)")/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="$(dirname "$(command -v python)")/protoc-gen-mypy_grpc" \
  --python_out=. --grpc_python_out=. --mypy_out=. --mypy_grpc_out=. \
  protos/pbt_service/api/v1/*.proto
touch pbt_service/api/__init__.py pbt_service/api/v1/__init__.py
