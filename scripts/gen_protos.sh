#!/usr/bin/env bash
# Regenerates the committed gRPC code under protos/pbt/v1 from the .proto files next to it.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -I protos \
  --plugin=protoc-gen-mypy="$(dirname "$(command -v python)")/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="$(dirname "$(command -v python)")/protoc-gen-mypy_grpc" \
  --python_out=protos --grpc_python_out=protos --mypy_out=protos --mypy_grpc_out=protos \
  protos/pbt/v1/*.proto
touch protos/pbt/__init__.py protos/pbt/v1/__init__.py
