#!/usr/bin/env bash
# LazyLLM with the pooled importance (--lazy-pool) on the 2048-window pare-long (issue #14, session 12).
# Usage: benchmarks/lazyllm-pool.sh [MODEL] [OUT_DIR]        (default snapshots/pare-long-4k.gguf, .cache/lazyllm-pool)
#   env: PART=speed|accuracy|all (default speed: the figures to rerun quietly), REPS=7, TRIALS=30 (per depth; 3 depths),
#        LENGTHS="2024 1500".
# speed: Pare.LazyBench side by side in one process (full prefill vs each setting, order rotating per rep, medians of the
#   per-rep ratios; process CPU time and wall time), random prompt tokens, 1 and 2 threads, at each length.
# accuracy: benchmarks/lazyllm-ttft.sh (pare needle, passkey and single, depths 0 / 0.5 / 1, one thread, each LazyLLM trial
#   also timing a full prefill of the same prompt) with the settings below, at each length.
set -euo pipefail
MODEL=${1:-snapshots/pare-long-4k.gguf}; OUT=${2:-.cache/lazyllm-pool}
PART=${PART:-speed}; REPS=${REPS:-7}; TRIALS=${TRIALS:-30}; LENGTHS=${LENGTHS:-2024 1500}
mkdir -p "$OUT"
if [ "$PART" = speed ] || [ "$PART" = all ]; then
  dotnet run -c Release --project benchmarks/Pare.LazyBench -- "$MODEL" --lengths "$(echo $LENGTHS | tr ' ' ,)" --threads 1,2 --reps "$REPS" \
    --settings "0.5@0.25@w10,wmax,max,pool5;0.5@0.25;0.3@0.375@w10,wmax,max,pool5;0.5@0.25,0.5,0.75" | tee "$OUT/speed.md"
fi
if [ "$PART" = accuracy ] || [ "$PART" = all ]; then
  ALL="--lazy-window 10 --lazy-window-reduce max --lazy-heads max --lazy-pool 5"
  SETTINGS="full|--prefill-prune none
paper: keep 0.5, layers 2/4/6|--prefill-prune lazyllm --keep 0.5
keep 0.5, layer 2 (paper's importance)|--prefill-prune lazyllm --keep 0.5 --prune-at 0.25
keep 0.5, layer 2, window 10 max, heads max, pool 5|--prefill-prune lazyllm --keep 0.5 --prune-at 0.25 $ALL
keep 0.3, layer 3 (paper's importance)|--prefill-prune lazyllm --keep 0.3 --prune-at 0.375
keep 0.3, layer 3, pool 5|--prefill-prune lazyllm --keep 0.3 --prune-at 0.375 --lazy-pool 5
keep 0.3, layer 3, window 10 max, heads max, pool 5|--prefill-prune lazyllm --keep 0.3 --prune-at 0.375 $ALL"
  for n in $LENGTHS; do SETTINGS=$SETTINGS benchmarks/lazyllm-ttft.sh "$MODEL" "$n" "$TRIALS" "$OUT/acc-$n"; done
fi
