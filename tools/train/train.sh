#!/bin/sh
# Trains the demo video VLM and exports it (docs/demo-model.md).
# Resumable: rerun the same command after an interruption; finished stages are skipped.
#   tools/train/train.sh                 # v2: data, two rounds of vision + joint stages from v1's weights, export
#   V2_INIT=DIR tools/train/train.sh     # v2: round 2 only, from a round-1 export in DIR
#   VERSION=1 tools/train/train.sh       # v1 from scratch: data + vision, decoder, joint + export
#   STAGES=export tools/train/train.sh   # re-export from the latest checkpoint
# v2 starts from a v1 checkpoint (V1_MODEL, default models/demo-v1) and
# writes to OUT (default $TRAIN_ROOT/out; copy it over models/demo when it passes docs/demo-model.md's bar).
set -eu
REPO=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=${VERSION:-2}
ROOT=${TRAIN_ROOT:-$HOME/vlm-sieve-train}-v$VERSION
DATA=$ROOT/data
mkdir -p "$ROOT"
# Build the TypeScript tools into a private folder (a clean build of dist/ elsewhere cannot pull them away).
ln -sfn "$REPO/node_modules" "$ROOT/node_modules"
(cd "$REPO" && npx tsc -p . --outDir "$ROOT/dist" >/dev/null 2>&1 || true)
export SIEVE_TOOLS_DIST="$ROOT/dist"
gen() { # split dir n offset
  if [ ! -f "$DATA/$2/$1.jsonl" ]; then
    node "$ROOT/dist/tools/train/make-data.js" --split "$1" --n "$3" --offset "$4" --out "$DATA/$2" --labels \
      --version "$VERSION"
  fi
}
# The export answers the shipped example clips and writes golden.json from them: give it their copy.
examples() { # out dir
  if [ ! -f "$1/examples/test.jsonl" ]; then
    mkdir -p "$1/examples"
    cp -r "$REPO/models/demo/examples/test.jsonl" "$REPO/models/demo/examples/test.scenes.jsonl" \
      "$REPO/models/demo/examples/videos" "$1/examples/"
  fi
}
OUT=${OUT:-$ROOT/out}
examples "$OUT"
gen val val 300 0
if [ "$VERSION" = 1 ]; then
  gen train train0 4000 0
  gen train train2 4000 8000
  exec nice -n 10 /usr/bin/python3 "$REPO/tools/train/train.py" --data "$DATA" --state "$ROOT/state" \
    --train-dirs train0,train2 --out "$OUT" --stages "${STAGES:-vision,decoder,joint,export}" "$@"
fi
# Round 1 (from v1's weights, 3,000 clips) and round 2 (from round 1, 3,000 new clips, CLS attention pulled onto
# objects, steps drawn evenly per question over frame counts). V2_INIT=DIR skips round 1 and starts round 2 from
# DIR (round 1 was committed as models/demo-v2 in commit 263f198).
V1=${V1_MODEL:-$REPO/models/demo-v1}
train() { # state dir, then train.py options
  state=$1
  shift
  nice -n 10 /usr/bin/python3 "$REPO/tools/train/train.py" --data "$DATA" --state "$ROOT/$state" --t-layers 16 \
    --cls-weight 1.0 "$@"
}
ROUND1=${V2_INIT:-$ROOT/round1}
if [ -z "${V2_INIT:-}" ]; then
  gen train train0 3000 0
  train state --train-dirs train0 --init-from "$V1" --out "$ROUND1" \
    --vision-min 10 --vision-lr 5e-4 --joint-min 70 --joint-lr 3e-4 --joint-vision-lr 1e-4 --stages vision,joint,export
fi
gen train train1 3000 3000
train state2 --train-dirs train1 --init-from "$ROUND1" --out "$OUT" --cls-attn-weight 0.5 \
  --frames-weight 1 --vision-min 4 --vision-lr 2e-4 --joint-min 85 --joint-lr 2e-4 --joint-vision-lr 1e-4 \
  --stages "${STAGES:-vision,joint,export}" "$@"
