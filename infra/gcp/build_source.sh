#!/usr/bin/env bash
# Build build/gcp/source.zip, the source archive of the three Cloud Functions (infra/gcp's
# var.source_archive): functions/gcp/main.py at the root (where the runtime looks for it), core/
# next to it, and functions/gcp/requirements.txt as requirements.txt, which Cloud Build installs.
# Run from the repository root.
set -euo pipefail

[[ -f functions/gcp/main.py && -d core ]] || { echo "run from the repository root" >&2; exit 2; }
python=${PYTHON:-python3}
[[ -z "${PYTHON:-}" && -x .venv/bin/python ]] && python=.venv/bin/python
python=$(command -v "$python")
[[ "$python" = /* ]] || python="$PWD/$python"

out=build/gcp
stage="$out/stage"
rm -rf "$stage" "$out/source.zip"
mkdir -p "$stage"
cp functions/gcp/main.py "$stage/main.py"
cp functions/gcp/requirements.txt "$stage/requirements.txt"
cp -R core "$stage/core"
find "$stage" -name __pycache__ -type d -prune -exec rm -rf {} +
(cd "$stage" && "$python" -m zipfile -c ../source.zip ./*)
rm -rf "$stage"
echo "built $out/source.zip ($(du -h "$out/source.zip" | cut -f1))"
