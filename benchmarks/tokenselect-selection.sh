#!/usr/bin/env bash
# TokenSelect's selection at 16k with the 852M cache shape (docs/long-context.md, "Session 16: selection"): by piece
# (Pare.KvBench --selection-parts: sketch scores + softmax, vote sum, the fused KeySketch.Votes the policy uses, top-k;
# 1 and 2 threads alternating rep by rep; 8- and 4-bit sketches), then the policy as a whole against full attention
# (Pare.KvBench --policies: tokenselect = the 4-bit default, tokenselect-int8; 2 threads, then 1).
# Usage: benchmarks/tokenselect-selection.sh [OUT_DIR]   (env: KV_HEADS=8 REPS=20 POLICY_REPS=9 CONTEXTS=2048,16384)
# Run on a quiet machine for figures to quote; prints the load with every line.
set -euo pipefail
OUT=${1:-docs/kv-selection-parts}; KV_HEADS=${KV_HEADS:-8}; REPS=${REPS:-20}; POLICY_REPS=${POLICY_REPS:-9}
CONTEXTS=${CONTEXTS:-2048,16384}
mkdir -p "$OUT"
dotnet build -c Release -v q benchmarks/Pare.KvBench >/dev/null
BENCH="dotnet benchmarks/Pare.KvBench/bin/Release/net10.0/Pare.KvBench.dll"
: > "$OUT/session16.jsonl.tmp"
for bits in 8 4; do
  $BENCH --selection-parts --contexts "$CONTEXTS" --kv-heads "$KV_HEADS" --threads 2 --reps "$REPS" --sketch-bits $bits | tee -a "$OUT/session16.jsonl.tmp"
done
for t in 2 1; do
  $BENCH --policies tokenselect,tokenselect-int8 --budgets 2048 --contexts 16384 --kv-heads "$KV_HEADS" --threads $t --reps "$POLICY_REPS" | tee -a "$OUT/session16.jsonl.tmp"
done
mv "$OUT/session16.jsonl.tmp" "$OUT/session16.jsonl"
grep -m1 "model name" /proc/cpuinfo | sed 's/.*: /CPU: /'
