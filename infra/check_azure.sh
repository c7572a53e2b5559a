#!/usr/bin/env bash
# Check the Azure deployment (infra/azure, Terraform) without Azure: `terraform fmt -check` when
# terraform is installed, checkov on the configuration, then the structural check in Python
# (infra/azure/check_structure.py). Fails on any failed checkov check: checks that do not apply
# are skipped inline in the resource, each with its reason. Run from the repository root.
#
# The linters come from their own virtualenv (infra/iac_tools.sh).
# `terraform validate` is not run: it needs `terraform init`, which downloads the azurerm provider.
set -euo pipefail

[[ -d infra/azure && -f functions/azure/function_app.py ]] || { echo "run from the repository root" >&2; exit 2; }

# shellcheck source=infra/iac_tools.sh
source infra/iac_tools.sh

if command -v terraform >/dev/null 2>&1; then
  terraform fmt -check -diff infra/azure 2> >(grep -v -e "CLI configuration" -e "terraformrc" -e '^[╷│╵]' >&2) \
    || { echo "infra/azure is not terraform-fmt formatted (run: terraform fmt infra/azure)" >&2; exit 1; }
else
  echo "terraform is not installed: formatting not checked" >&2
fi

ensure_iac_tools

# --skip-download: no call to Prisma Cloud (which also means no severities: every failed check fails).
"$tools/bin/checkov" --quiet --compact --skip-download --framework terraform -d infra/azure

"$tools/bin/python" infra/azure/check_structure.py

echo "Azure deployment checks passed (infra/azure)"
