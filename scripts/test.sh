#!/usr/bin/env bash
# Install TorchLean with its development tools and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet -e ".[dev]" --config-settings editable_mode=strict
pytest tests "$@"
