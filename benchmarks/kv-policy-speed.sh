#!/usr/bin/env bash
# KV-policy speed (issue #14), attention only, on the 852M random model's cache shape (16 layers, 32 query heads, head
# width 64; F32 cache of random rows): per decoded token, every layer's selection + attention vs the full cache's kernel,
# at 4k / 8k / 16k positions, budgets 1k / 2k, with 8 K/V heads (the 852M model) and 32 (a 4x larger cache), 2 threads.
# Decode tok/s is composed with the 852M Q8_0 model's measured decode step at a short context (see Pare.KvBench).
# tokenselect is the default TokenSelect (4-bit sketch for the selection scores since session 16, int8 before; K rows);
# tokenselect-int8 / tokenselect-int4 the same with an 8-bit / 4-bit sketch;
# tokenselect-f32 the reference's F32 scores over the blocked cache. policy_copies_mib: the K copies a policy keeps (TokenSelect's sketch and rows), every layer.
# speedup_vs_full: best full / best policy over the reps; speedup_paired_median: each rep times full right before the
# policy, the median of those pairs' ratios (steadier on a shared machine). KV_HEADS=8 (or 32) runs one K/V head count only.
# Usage: benchmarks/kv-policy-speed.sh [OUT.jsonl]   (env: POLICIES=streaming,quest,tokenselect,tokenselect-int8,tokenselect-f32,h2o,snapkv,actqkv
#        CONTEXTS=4096,8192,16384 BUDGETS=1024,2048 THREADS=2 REPS=5 KV_HEADS="8 32" MODEL=.cache/bench/random-852m-Q8_0.gguf)
# The machine must be quiet (stop training runs); prints the load with every line.
set -euo pipefail
OUT=${1:-docs/kv-policy-speed.jsonl}
POLICIES=${POLICIES:-streaming,quest,tokenselect,tokenselect-int8,tokenselect-f32,h2o,snapkv,actqkv}
CONTEXTS=${CONTEXTS:-4096,8192,16384}; BUDGETS=${BUDGETS:-1024,2048}; THREADS=${THREADS:-2}; REPS=${REPS:-5}
MODEL=${MODEL:-.cache/bench/random-852m-Q8_0.gguf}
dotnet build -c Release -v q benchmarks/Pare.KvBench >/dev/null
BENCH="dotnet benchmarks/Pare.KvBench/bin/Release/net10.0/Pare.KvBench.dll"
[ -f "$MODEL" ] && M=(--model "$MODEL") || { echo "kv-policy-speed: $MODEL missing (benchmarks/Pare.SideBySide writes it): no composed decode tok/s" >&2; M=(); }
: > "$OUT.tmp"
for kv in ${KV_HEADS:-8 32}; do
  $BENCH --policies "$POLICIES" --budgets "$BUDGETS" --contexts "$CONTEXTS" --kv-heads $kv --threads "$THREADS" --reps "$REPS" "${M[@]}" | tee -a "$OUT.tmp"
done
mv "$OUT.tmp" "$OUT"
grep -m1 "model name" /proc/cpuinfo | sed 's/.*: /CPU: /'
