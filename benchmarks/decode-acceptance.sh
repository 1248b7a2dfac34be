#!/usr/bin/env bash
# Every acceptance measurement of issue #12 ("decode at the memory limit on any CPU") in one go, on a QUIET machine
# (stop other jobs first: every figure here is a ratio or a bandwidth, and load on 2 vCPUs moves them by 2x).
#
#   benchmarks/decode-acceptance.sh [OUT_DIR]        (default .cache/acceptance; about 12-15 minutes, the first run
#                                                     longer: it writes the 852M model and its pruned copies)
#
# Writes OUT_DIR/report.md (all tables, with the CPU, load average and measured bandwidth) and prints it.
# Steps:
#   1. kernel benchmark: per thread, Pare vs llama.cpp's exported vec_dot kernels, in L2 and from DRAM; then the compact
#      sparse kernel (50% / 70%) against both engines' dense kernels on the same pruned matrix
#   2. side by side on the 852M random model, F16 / Q8_0 / Q4_K_M, 2 threads then 1 thread (bandwidth, roofline)
#   3. compact sparse (magnitude 50% / 70%, F16 and Q8_0) in Pare against llama.cpp on the same pruned DENSE file
#   4. 1 vs 2 threads on pare-ref (F32 as shipped, and Q8_0 made by llama.cpp's quantizer), alternating in one process
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-.cache/acceptance}
REPORT="$OUT/report.md"

source benchmarks/acceptance-common.sh

{
  acceptance_header "Issue #12 acceptance run"
  echo "## 1. Kernels, one thread (\`benchmarks/Pare.KernelBench\`)"
  echo
} > "$REPORT"

echo "1/4 kernel benchmark ..." >&2
$KB --rounds 9 | tail -n +3 >> "$REPORT"
{ echo; echo "### Compact sparse kernel, one thread (\`Pare.KernelBench sparse --rounds 9\`)"; echo; } >> "$REPORT"
$KB sparse --rounds 9 | tail -n +3 >> "$REPORT"

echo "2/4 side by side, 852M model ..." >&2
for t in 2 1; do
  { echo; echo "## 2. 852M random model, side by side, $t thread(s) (\`benchmarks/Pare.SideBySide --threads $t --rounds 3\`)"; echo; } >> "$REPORT"
  $SBS --threads "$t" --rounds 3 | tail -n +3 >> "$REPORT"
done

echo "3/4 compact sparse vs llama.cpp dense ..." >&2
sparse_pairs
{ echo; echo "## 3. Compact sparse in Pare vs the same pruned dense file in llama.cpp, 2 threads (\`--pairs\`)"; echo; } >> "$REPORT"
$SBS --threads 2 --rounds 3 --pairs "$PAIRS" | tail -n +3 >> "$REPORT"

echo "4/4 pare-ref, 1 vs 2 threads ..." >&2
[ -f "$BENCH/pare-ref-Q8_0.gguf" ] || $SBS quantize models/pare-ref.gguf "$BENCH/pare-ref-Q8_0.gguf" Q8_0
{
  echo; echo "## 4. Decode with 1 and 2 threads, alternating in one process (\`Pare.KernelBench threads MODEL --rounds 11 --decode 128\`)"; echo
  echo "| model | decode tokens | 1 thread tok/s | 2 threads tok/s | 2 / 1 | load |"
  echo "|---|---|---|---|---|---|"
} >> "$REPORT"
for m in models/pare-ref.gguf "$BENCH/pare-ref-Q8_0.gguf" "$BENCH/random-852m-Q8_0.gguf"; do
  n=128; case "$m" in *852m*) n=16;; esac
  $KB threads "$m" --rounds 5 --decode "$n" >> "$REPORT"
done
{ echo; echo "Load average at end: $(cut -d' ' -f1-3 /proc/loadavg)."; } >> "$REPORT"
cat "$REPORT"
