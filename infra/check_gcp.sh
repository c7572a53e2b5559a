#!/usr/bin/env bash
# Check the GCP deployment without GCP and without Terraform: parse every infra/gcp/*.tf with
# python-hcl2 and check its structure against the code (infra/gcp/check_tf.py, in the project's
# .venv), build the functions' source archive, then run checkov on infra/gcp. Fails on a parse
# error, a structural problem, or any failed checkov check: a check that does not apply is
# skipped inline in the resource with `#checkov:skip=<ID>:<reason>`. (Offline, checkov knows no
# severities, so failing on every check is the strict form of "fail on HIGH".) Run from the
# repository root (`make iac-gcp`).
#
# The linters come from their own virtualenv (infra/iac_tools.sh).
set -euo pipefail

[[ -d infra/gcp && -f functions/gcp/main.py ]] || { echo "run from the repository root" >&2; exit 2; }

python=${PYTHON:-.venv/bin/python}
# shellcheck source=infra/iac_tools.sh
source infra/iac_tools.sh

# 1. Parse and structure (python-hcl2 from the project's dev dependencies).
"$python" infra/gcp/check_tf.py

# 2. The source archive var.source_archive names.
PYTHON="$python" bash infra/gcp/build_source.sh

# 3. checkov, in its own environment.
ensure_iac_tools

# --skip-download: no call to Prisma Cloud. Terraform is not run, so modules and variables are
# not resolved beyond what checkov evaluates itself.
"$tools/bin/checkov" --quiet --compact --skip-download --framework terraform -d infra/gcp

echo "GCP deployment checks passed (infra/gcp)"
