#!/bin/sh
# Trains the demo video VLM and exports it to models/demo (docs/demo-model.md).
# Resumable: rerun the same command after an interruption; finished stages are skipped.
#   tools/train/train.sh            # data (if missing) + vision, decoder, joint stages + export
#   STAGES=export tools/train/train.sh
set -eu
REPO=$(cd "$(dirname "$0")/../.." && pwd)
ROOT=${TRAIN_ROOT:-/root/vlm-sieve-train}
DATA=$ROOT/data
mkdir -p "$ROOT"
# Build the TypeScript tools into a private folder (a clean build of dist/ elsewhere cannot pull them away).
ln -sfn "$REPO/node_modules" "$ROOT/node_modules"
(cd "$REPO" && npx tsc -p . --outDir "$ROOT/dist" >/dev/null 2>&1 || true)
export SIEVE_TOOLS_DIST="$ROOT/dist"
gen() { # split dir n offset
  if [ ! -f "$DATA/$2/$1.jsonl" ]; then
    node "$ROOT/dist/tools/train/make-data.js" --split "$1" --n "$3" --offset "$4" --out "$DATA/$2" --labels
  fi
}
gen val val 300 0
gen train train0 4000 0
gen train train2 4000 8000
exec nice -n 10 /usr/bin/python3 "$REPO/tools/train/train.py" --data "$DATA" --state "$ROOT/state" \
  --stages "${STAGES:-vision,decoder,joint,export}" "$@"
