#!/usr/bin/env bash
# Check the AWS deployment without AWS: build the deployment zip, `serverless package` (v3, from
# package-lock.json) with dummy credentials, then cfn-lint and checkov on the generated template.
# Fails on any cfn-lint error and any failed checkov check. Run from the repository root
# (`make iac-aws`).
#
# The linters come from their own virtualenv (infra/iac_tools.sh).
set -euo pipefail

root=$(pwd)
[[ -f serverless.yml && -f package-lock.json ]] || { echo "run from the repository root" >&2; exit 2; }

template=.serverless/cloudformation-template-update-stack.json
# shellcheck source=infra/iac_tools.sh
source infra/iac_tools.sh

# 1. npm tools, exactly as locked (no network once node_modules is there).
if [[ ! -x node_modules/.bin/serverless ]] || ! cmp -s package-lock.json node_modules/.package-lock.copy; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.package-lock.copy
fi

# 2. The deployment zip that serverless.yml names as its artifact.
bash infra/aws/build_package.sh

# 3. `serverless package` needs no AWS call for this service, but the SDK wants credentials and
#    a region to exist. These dummies cannot reach any account; telemetry and update
#    notifications (the only other network use) are switched off.
AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE \
AWS_SECRET_ACCESS_KEY=not-a-real-secret-offline-package-only \
AWS_SESSION_TOKEN='' \
AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_PROFILE='' AWS_SDK_LOAD_CONFIG=0 \
SLS_TELEMETRY_DISABLED=1 SLS_TRACKING_DISABLED=1 SLS_NOTIFICATIONS_MODE=off SLS_DEPRECATION_DISABLE='*' \
CI=true \
  node_modules/.bin/serverless package --stage "${TRAIN_STAGE:-dev}" --region us-east-1
[[ -s "$template" ]] || { echo "serverless package wrote no $template" >&2; exit 1; }

# 4. The linters, in their own environment.
ensure_iac_tools

# cfn-lint exits with a bit mask: 2 errors, 4 warnings, 8 informational. Errors fail the check.
# W3005 (a DependsOn that a Ref already implies) is how Serverless writes every function and
# route; it is not ours to fix.
status=0
"$tools/bin/cfn-lint" --ignore-checks W3005 -- "$template" || status=$?
if (( status & 3 )); then
  echo "cfn-lint found errors in $template" >&2
  exit 1
fi

# checkov fails on any failed check. Checks that do not apply are skipped in serverless.yml,
# each with its reason, in the resource's Metadata. --skip-download: no call to Prisma Cloud.
"$tools/bin/checkov" --quiet --compact --skip-download --framework cloudformation -f "$template"

echo "AWS deployment checks passed ($root/$template)"
