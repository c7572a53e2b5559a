# Sourced by infra/check_{aws,gcp,azure}.sh. The IaC linters (checkov, cfn-lint) live in one
# virtualenv of their own, build/iac-venv, built from infra/requirements-iac.txt and rebuilt only
# when that file changes: checkov pins boto3 and packaging to versions that conflict with the
# project's .venv, so the two cannot share one environment.
tools=build/iac-venv
tool_requirements=infra/requirements-iac.txt

ensure_iac_tools() {
  if [[ ! -x "$tools/bin/checkov" ]] || ! cmp -s "$tool_requirements" "$tools/.requirements"; then
    rm -rf "$tools"
    python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet --disable-pip-version-check -r "$tool_requirements" \
      2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    cp "$tool_requirements" "$tools/.requirements"
  fi
}
