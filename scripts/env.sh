# Sourced by the scripts: use the active virtual environment, or make and enter .venv,
# then install TorchLean (editable, with its development tools).
if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -d .venv ] || python3 -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
python -m pip install --quiet -e ".[dev]" --config-settings editable_mode=strict
