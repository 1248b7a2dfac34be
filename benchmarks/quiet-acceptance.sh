#!/usr/bin/env bash
# The tables of issue #12 in about 10 minutes, for a QUIET machine (stop other jobs first: on 2 vCPUs any load moves
# these ratios by up to 2x). A shorter cut of benchmarks/decode-acceptance.sh (which also runs 1 vs 2 threads and takes
# 15+ minutes).
#
#   benchmarks/quiet-acceptance.sh [OUT_DIR]     (default .cache/acceptance; writes OUT_DIR/quiet-report.md and prints it)
#
#   1. kernels, one thread, Pare vs llama.cpp's exported vec_dot kernels, in L2 and from DRAM (Q8_0, F16, Q4_K, Q6_K)
#   2. compact sparse kernel, one thread, 50% / 70%, against llama.cpp's and Pare's dense kernels
#   3. 852M random model side by side, F16 / Q8_0 / Q4_K_M, 2 threads then 1 thread (prompt 128, 32 decode steps)
#   4. compact sparse 852M models (magnitude 50% / 70%, F16 and Q8_0) in Pare vs the pruned DENSE file in llama.cpp,
#      2 threads (the first run prunes and repacks them: a few minutes more)
# Needs .cache/bench/random-852m-{F16,Q8_0,Q4_K_M}.gguf (Pare.SideBySide writes them when missing: slow the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-.cache/acceptance}
REPORT="$OUT/quiet-report.md"

source benchmarks/acceptance-common.sh

{
  acceptance_header "Issue #12 tables, quiet run"
  echo "## 1. Kernels, one thread (\`Pare.KernelBench --rounds 7\`)"
  echo
} > "$REPORT"

step "1/4 kernels ..."
$KB --rounds 7 | tail -n +3 >> "$REPORT"

step "2/4 compact sparse kernel ..."
{ echo; echo "## 2. Compact sparse kernel, one thread (\`Pare.KernelBench sparse --rounds 7\`)"; echo; } >> "$REPORT"
$KB sparse --rounds 7 | tail -n +3 >> "$REPORT"

for t in 2 1; do
  step "3/4 side by side, $t thread(s) ..."
  { echo; echo "## 3. 852M random model, side by side, $t thread(s) (\`Pare.SideBySide --threads $t --rounds 3\`)"; echo; } >> "$REPORT"
  $SBS --threads "$t" --rounds 3 | tail -n +3 >> "$REPORT"
done

step "4/4 compact sparse vs llama.cpp dense ..."
sparse_pairs
{ echo; echo "## 4. Compact sparse in Pare vs the same pruned dense file in llama.cpp, 2 threads (\`Pare.SideBySide --threads 2 --rounds 3 --prefill 32 --pairs ...\`)"; echo; } >> "$REPORT"
$SBS --threads 2 --rounds 3 --prefill 32 --pairs "$PAIRS" | tail -n +3 >> "$REPORT"

{ echo; echo "Load average at end: $(cut -d' ' -f1-3 /proc/loadavg); $(( $(date +%s) - START )) s in all."; } >> "$REPORT"
step "done: $REPORT"
cat "$REPORT"
