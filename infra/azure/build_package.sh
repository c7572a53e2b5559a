#!/usr/bin/env bash
# The function app's deployment zip: function_app.py, host.json and requirements.txt at the root
# (where the Python worker looks for them) next to the core package. Dependencies are installed by
# the platform's remote build from requirements.txt:
#   az functionapp deployment source config-zip -g <group> -n <app> --src build/azure/train-functions.zip --build-remote true
# Run from the repository root; writes build/azure/train-functions.zip.
set -euo pipefail
[[ -f functions/azure/function_app.py ]] || { echo "run from the repository root" >&2; exit 2; }
mkdir -p build/azure
python3 - <<'PY'
import zipfile
from pathlib import Path

out = Path("build/azure/train-functions.zip")
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
    for name in ("function_app.py", "host.json", "requirements.txt"):
        package.write(Path("functions/azure") / name, name)
    for path in sorted(Path("core").rglob("*.py")):
        package.write(path, path.as_posix())
print(f"wrote {out}")
PY
