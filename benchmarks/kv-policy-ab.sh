#!/usr/bin/env bash
# A/B of KV-policy speed on a shared machine (docs/long-context.md, "TokenSelect at 8 K/V heads (session 15)"): builds
# Pare.KvBench at BASE (a commit; its Program.cs replaced by this tree's, so that both report speedup_paired_median) and
# at this tree, then runs them alternately, process by process, ROUNDS times. One line per (build, policy).
# Usage: benchmarks/kv-policy-ab.sh BASE [OUT.txt]   (env: KV_HEADS=8 THREADS=2 ROUNDS=2 REPS=7 POLICIES=tokenselect,streaming
#        CONTEXTS=16384 BUDGETS=2048 BASE_POLICIES=$POLICIES: the names BASE runs, where a path was renamed since)
set -euo pipefail
BASE=${1:?usage: benchmarks/kv-policy-ab.sh BASE [OUT.txt]}; OUT=${2:-/dev/null}
KV_HEADS=${KV_HEADS:-8}; THREADS=${THREADS:-2}; ROUNDS=${ROUNDS:-2}; REPS=${REPS:-7}
POLICIES=${POLICIES:-tokenselect,streaming}; CONTEXTS=${CONTEXTS:-16384}; BUDGETS=${BUDGETS:-2048}; BASE_POLICIES=${BASE_POLICIES:-$POLICIES}
git cat-file -e "$BASE^{commit}" 2>/dev/null || { echo "kv-policy-ab: $BASE is not a commit" >&2; exit 1; }
DIR=.cache/kv-ab/$(git rev-parse --short "$BASE")
if [ ! -d "$DIR" ]; then mkdir -p "$DIR" && git archive "$BASE" | tar -x -C "$DIR"; fi
cp benchmarks/Pare.KvBench/Program.cs "$DIR/benchmarks/Pare.KvBench/Program.cs"
if ! dotnet build -c Release -v q "$DIR/benchmarks/Pare.KvBench" >/dev/null 2>&1; then
  # This tree's Program.cs calls kernels BASE lacks (e.g. --selection-parts' KeySketch.Votes): BASE's own then.
  git show "$BASE:benchmarks/Pare.KvBench/Program.cs" > "$DIR/benchmarks/Pare.KvBench/Program.cs"
  grep -q speedup_paired_median "$DIR/benchmarks/Pare.KvBench/Program.cs" || { echo "kv-policy-ab: $BASE's Pare.KvBench has no paired timing" >&2; exit 1; }
  dotnet build -c Release -v q "$DIR/benchmarks/Pare.KvBench" >/dev/null
fi
dotnet build -c Release -v q benchmarks/Pare.KvBench >/dev/null
for r in $(seq 1 "$ROUNDS"); do
  for v in base new; do
    d=$DIR; p=$BASE_POLICIES; [ $v = new ] && d=. && p=$POLICIES
    (cd "$d" && dotnet benchmarks/Pare.KvBench/bin/Release/net10.0/Pare.KvBench.dll --policies "$p" --contexts "$CONTEXTS" \
      --budgets "$BUDGETS" --kv-heads "$KV_HEADS" --threads "$THREADS" --reps "$REPS") | python3 -c "
import sys, json
for l in sys.stdin:
    d = json.loads(l)
    print('$v', d['policy'], 'kv', d['kv_heads'], 'thr', d['threads'], 'budget', d['budget'], 'sel', round(d['selection_ms_per_token'], 2),
          'tot', round(d['attention_ms_per_token'], 2), 'x', round(d['speedup_vs_full'], 2), 'paired', round(d.get('speedup_paired_median', 1), 2), 'load', d['load'])"
  done
done | tee "$OUT"
grep -m1 "model name" /proc/cpuinfo | sed 's/.*: /CPU: /'
