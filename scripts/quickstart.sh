#!/usr/bin/env bash
# Install TorchLean (into .venv unless a venv is active) and run the quickstart.
# Extra arguments go to the example, e.g. --steps 200 --dtype float --backend eager.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
python examples/quickstart/simple_mlp_train.py "$@"
