#!/usr/bin/env bash
# Build build/aws/train.zip, the one deployment package of the three Lambda functions:
# core/, functions/aws/ and the pinned dependencies of infra/aws/requirements.txt, vendored from
# the manylinux wheels PyPI publishes for Lambda's Linux/arm64 (no Docker, no compiler).
# The dependencies are reinstalled only when the requirements change. Run from the repo root.
set -euo pipefail

requirements=infra/aws/requirements.txt
out=build/aws
deps="$out/deps"
stamp="$deps/.requirements"
python=${PYTHON:-python3}
[[ -z "${PYTHON:-}" && -x .venv/bin/python ]] && python=.venv/bin/python
python=$(command -v "$python")
[[ "$python" = /* ]] || python="$PWD/$python"

if ! { [[ -f "$stamp" ]] && cmp -s "$requirements" "$stamp"; }; then
  rm -rf "$deps"
  mkdir -p "$deps"
  # The machine's pip configuration may name local indexes that do not exist; their warnings
  # are noise here, anything else is shown.
  "$python" -m pip install --quiet --disable-pip-version-check --no-compile --no-warn-conflicts \
    --target "$deps" \
    --platform manylinux2014_aarch64 --implementation cp --python-version 3.11 --abi cp311 \
    --only-binary=:all: \
    -r "$requirements" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  rm -rf "$deps/bin"
  cp "$requirements" "$stamp"
fi

stage="$out/stage"
rm -rf "$stage" "$out/train.zip"
mkdir -p "$stage/functions"
cp -R "$deps"/. "$stage"/
rm -f "$stage/.requirements"
cp -R core "$stage/core"
cp functions/__init__.py "$stage/functions/"
cp -R functions/aws "$stage/functions/aws"
find "$stage" -name __pycache__ -type d -prune -exec rm -rf {} +
(cd "$stage" && "$python" -m zipfile -c ../train.zip ./*)
rm -rf "$stage"
echo "built $out/train.zip ($(du -h "$out/train.zip" | cut -f1))"
