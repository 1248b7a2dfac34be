#!/usr/bin/env bash
# Issue #12's compact sparse point with the row-group layout: Pare decoding the row-group compact 852M files against
# llama.cpp decoding the same pruned model DENSE (zeros stored), F16 and Q8_0, 50% and 70%, 2 threads then 1 thread,
# plus the one-thread row-group kernel against llama.cpp's dense kernel. For a QUIET machine; about 6-7 minutes once
# the files exist (the first run makes them: ~10 minutes more).
#
#   benchmarks/rowgroup-acceptance.sh [G] [OUT_DIR]   (G = rows per shared column mask, default 32; OUT_DIR default
#                                                      .cache/acceptance; writes OUT_DIR/rowgroup-report.md and prints it)
#   ROUNDS=1 DECODE=4 KROUNDS=1 benchmarks/rowgroup-acceptance.sh ...   (a quick check that it runs; defaults 3, 32, 3)
#
# Files (in .cache/bench): random-852m-{F16,Q8_0}.gguf (Pare.SideBySide writes them), mag$G-T-S.gguf (magnitude
# row-group pruned, dense layout: what llama.cpp runs), rg$G-T-S.gguf (the same repacked to the row-group layout:
# what Pare runs). Each Pare.SideBySide run prints the multi-stream read bandwidth it measured before its rows.
set -euo pipefail
cd "$(dirname "$0")/.."
G=${1:-32}
ROUNDS=${ROUNDS:-3}; DECODE=${DECODE:-32}; KROUNDS=${KROUNDS:-3}
OUT=${2:-.cache/acceptance}
REPORT="$OUT/rowgroup-report.md"

source benchmarks/acceptance-common.sh

step "files ..."
[ -f "$BENCH/random-852m-Q8_0.gguf" ] || $SBS --formats Q8_0 --rounds 1 --prefill 4 --decode 4 --dir "$BENCH" >/dev/null
PAIRS=""
for ty in F16 Q8_0; do
  for s in 0.5 0.7; do
    dense="$BENCH/mag$G-$ty-$s.gguf"; compact="$BENCH/rg$G-$ty-$s.gguf"
    [ -f "$dense" ] || $PARE prune "$BENCH/random-852m-$ty.gguf" --method magnitude --sparsity "$s" --samples 0 --row-group "$G" -o "$dense" --json >/dev/null
    [ -f "$compact" ] || $PARE prune "$dense" --repack --row-group "$G" -o "$compact" --json >/dev/null
    PAIRS="$PAIRS${PAIRS:+,}$ty-$s-rowgroup$G=$compact:$dense"
  done
done

acceptance_header "Row-group compact sparse (G = $G) vs llama.cpp's dense model" > "$REPORT"
echo "Pare runs rg$G-T-S.gguf (row-group layout), llama.cpp mag$G-T-S.gguf (the same pruned weights, dense); target: decode ratio >= 1.5x at 50%, >= 2.2x at 70%." >> "$REPORT"
for t in 2 1; do
  step "side by side, $t thread(s) ..."
  { echo; echo "## Decode, $t thread(s) (\`Pare.SideBySide --threads $t --rounds $ROUNDS --prefill 16 --decode $DECODE --pairs ...\`)"; echo; } >> "$REPORT"
  $SBS --threads "$t" --rounds "$ROUNDS" --prefill 16 --decode "$DECODE" --pairs "$PAIRS" | tail -n +3 >> "$REPORT"
done

step "kernel, one thread ..."
{ echo; echo "## Row-group kernel, one thread (\`Pare.KernelBench rowgroup --rounds $KROUNDS --groups $G\`)"; echo; } >> "$REPORT"
$KB rowgroup --rounds "$KROUNDS" --groups "$G" | tail -n +3 >> "$REPORT"

{ echo; echo "Load average at end: $(cut -d' ' -f1-3 /proc/loadavg); $(( $(date +%s) - START )) s in all."; } >> "$REPORT"
step "done: $REPORT"
cat "$REPORT"
