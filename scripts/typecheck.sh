#!/usr/bin/env bash
# mypy --strict over the packages and examples, as installed code is laid out.
# spec/, runtime/ and verify/ become torchlean.spec/.runtime/.verify only when installed;
# a symlinked view of that layout lets mypy read the sources without any install.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
view="$(mktemp -d)"
trap 'rm -rf "$view"' EXIT
mkdir "$view/torchlean"
for f in "$root"/torchlean/*; do ln -s "$f" "$view/torchlean/"; done
for layer in spec runtime verify; do ln -s "$root/$layer" "$view/torchlean/$layer"; done
cd "$view"
MYPYPATH="$view" python -m mypy --strict --config-file "$root/pyproject.toml" -p torchlean
MYPYPATH="$view" python -m mypy --strict --config-file "$root/pyproject.toml" "$root/examples"
