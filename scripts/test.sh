#!/usr/bin/env bash
# Install TorchLean with its development tools (into .venv unless a venv is active) and
# run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
pytest tests "$@"
