#!/usr/bin/env bash
# The GPU check of issue [10], as one short script for a lent device machine (the device
# tool runs it in the repository root):  bash scripts/gpu_check.sh
#
# The device image has CUDA builds of CuPy and PyTorch in its own python3 and nothing can
# be fetched there, so torchlean is not installed: a symlinked view of the installed
# layout (as scripts/typecheck.sh makes) goes on PYTHONPATH. It prints the device, runs the CuPy-marked tests (a skipped one
# fails the check: there they must run) and the GPU benchmark, and leaves the logs in
# $OUT when the tool sets it. On a machine without a GPU it stops after saying so.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:-$(mktemp -d)}"
view="$(mktemp -d)"
trap 'rm -rf "$view"' EXIT
mkdir "$view/torchlean"
for f in "$root"/torchlean/*; do ln -s "$f" "$view/torchlean/"; done
for layer in spec runtime verify; do ln -s "$root/$layer" "$view/torchlean/$layer"; done
export PYTHONPATH="$view"
python() { python3 "$@"; }

cd /tmp  # run Python outside the source tree, which would shadow the installed package
python - <<'EOF' 2>&1 | tee "$out/device.txt"
import numpy
print("numpy", numpy.__version__)
try:
    import cupy
    print("cupy", cupy.__version__, "devices", cupy.cuda.runtime.getDeviceCount(),
          cupy.cuda.runtime.getDeviceProperties(0)["name"].decode())
except Exception as e:  # the check's first line of output says what is missing
    print("no CuPy GPU:", type(e).__name__, e)
    raise SystemExit(3)
EOF

status=0
python -m pytest -p no:cacheprovider --rootdir "$root" -c "$root/pyproject.toml" -m cupy -rs \
    "$root/tests/runtime/test_cuda.py" "$root/tests/runtime/test_fusion.py" \
    >"$out/pytest.txt" 2>&1 || status=1
cat "$out/pytest.txt"
if grep -q "skipped" "$out/pytest.txt"; then
  echo "gpu_check: a CuPy test was skipped on the GPU machine" >&2
  status=1
fi
python "$root/bench/bench_cuda.py" --repeats 5 >"$out/bench_cuda.txt" 2>&1 || status=1
cat "$out/bench_cuda.txt"
exit "$status"
