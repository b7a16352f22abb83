#!/bin/sh
# ViTCoP's levers (methods.md §1) on the demo model: `sieve eval` of each variant here (the default
# config with one option changed) at the budgets below, then levers.md and levers.json beside this script.
#   docs/results/levers/run.sh            # all 560 test questions (about 13 minutes on 2 cores)
#   N=160 docs/results/levers/run.sh
#   MODEL=models/demo-v1 DATA=data/synth-v2 LEVERS="default stage1-random" OUT=/tmp/levers docs/results/levers/run.sh
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
BUDGETS=${BUDGETS:-0.111,0.056}
DATA=${DATA:-$REPO/data/synth}
LEVERS=${LEVERS:-$(cd "$HERE" && ls *.yaml | sed 's/\.yaml$//')}
RUNS=$(mktemp -d)
for name in $LEVERS; do
  cfg=$HERE/$name.yaml
  echo "lever $name"
  node "$REPO/bin/sieve.js" eval --config "$cfg" --data "$DATA" ${MODEL:+--model "$MODEL"} ${N:+--n "$N"} \
    --methods vitcop --budgets "$BUDGETS" --table "$RUNS/$name" >/dev/null || echo "lever $name: no result"
done
mkdir -p "${OUT:-$HERE}"
node "$HERE/table.mjs" "$RUNS" "${OUT:-$HERE}"
rm -rf "$RUNS"
