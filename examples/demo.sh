#!/usr/bin/env bash
# `make demo`: start Train locally, run examples/hello from submission to COMPLETED, print its
# logs and checkpoints, then stop the service. State goes to .train-demo/ (removed first).
set -euo pipefail
cd "$(dirname "$0")/.."

export TRAIN_DATA_DIR="${TRAIN_DEMO_DIR:-$PWD/.train-demo}"
unset TRAIN_URL TRAIN_API_KEY TRAIN_ACCOUNT_ID
rm -rf "$TRAIN_DATA_DIR"
mkdir -p "$TRAIN_DATA_DIR"
log="$TRAIN_DATA_DIR/serve.log"

echo "==> Starting Train (SQLite + local backend) with state in $TRAIN_DATA_DIR"
train serve --host 127.0.0.1 --port 0 --data-dir "$TRAIN_DATA_DIR" >"$log" 2>&1 &
server=$!
stop_server() {
  if kill -0 "$server" 2>/dev/null; then
    echo "==> Stopping Train"
    kill -TERM "$server"
    wait "$server" || true
  fi
}
trap stop_server EXIT

for _ in $(seq 1 150); do
  grep -q "Train is listening on" "$log" && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; echo "train serve exited early" >&2; exit 1; }
  sleep 0.2
done
grep -q "Train is listening on" "$log" || { cat "$log"; echo "train serve did not start" >&2; exit 1; }
sed -e 's/\(API key \)trn_[A-Za-z0-9_-]*/\1(in credentials.json)/' "$log"

echo
echo "==> train submit -f examples/hello/spec.yaml --follow"
job_json="$TRAIN_DATA_DIR/hello-job.json"
status=0
train submit -f examples/hello/spec.yaml --follow --json >"$job_json" || status=$?
job_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$job_json")

echo
echo "==> train get $job_id"
train get "$job_id"
echo
echo "==> train logs $job_id"
train logs "$job_id"
echo
echo "==> train checkpoints $job_id"
train checkpoints "$job_id"
echo
echo "==> train events $job_id"
train events "$job_id"

if [ "$status" -ne 0 ]; then
  echo "The demo job did not complete (exit $status)." >&2
  exit "$status"
fi
echo
echo "The demo job COMPLETED. Try it yourself: make serve, then .venv/bin/train submit -f examples/hello/spec.yaml --follow"
