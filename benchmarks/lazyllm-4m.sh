#!/usr/bin/env bash
# LazyLLM on the shipped pare-long (stage 4m; issue #14, session 13): the pruning layer scored by its own attention
# (--lazy-score same) at the look-up layer, against full prefill and the paper's importance.
# Usage: benchmarks/lazyllm-4m.sh [MODEL] [OUT_DIR]        (default models/pare-long.gguf, .cache/lazyllm-4m)
#   env: PART=speed|accuracy|probe|sweep|all (default speed: the figures to rerun quietly, ~2 min), REPS=9,
#        TRIALS=30 (per depth; depths 0 / 0.5 / 1), SEED=1 (another seed: full and the chosen setting only), LENGTH=2024.
# speed: Pare.LazyBench side by side in one process (full prefill vs each setting, order rotating per rep, medians of the
#   per-rep ratios; process CPU time and wall time), random prompt tokens, 1 and 2 threads.
# accuracy: benchmarks/lazyllm-ttft.sh (pare needle, passkey and single, one thread, each LazyLLM trial also timing a full
#   prefill of the same prompt) with the settings below; ~30 min on a quiet machine (existing JSON in OUT_DIR is kept).
# probe: Pare.LazyBench --probe: where each layer's attention ranks the needle's value (which layer looks it up).
# sweep: 10 trials per depth, passkey and single, pruning layer 1..6 at the keep that makes the ideal ~1.5-1.6x, the
#   paper's importance, the session-12 variant and the same-layer score (one line per run in OUT_DIR/sweep.tsv).
set -euo pipefail
MODEL=${1:-models/pare-long.gguf}; OUT=${2:-.cache/lazyllm-4m}
PART=${PART:-speed}; REPS=${REPS:-9}; TRIALS=${TRIALS:-30}; SEED=${SEED:-1}; LENGTH=${LENGTH:-2024}
mkdir -p "$OUT"
bench() { dotnet build -c Release -v q benchmarks/Pare.LazyBench -o .cache/lazybench >/dev/null; dotnet .cache/lazybench/Pare.LazyBench.dll "$MODEL" "$@"; }
if [ "$PART" = speed ] || [ "$PART" = all ]; then
  bench --lengths "$LENGTH" --threads 1,2 --reps "$REPS" \
    --settings "0.3,0.3@0.5,0.75@same,pool5;0.3@0.5@same,pool5;0.2@0.5@same,pool5;0.1@0.625;0.5@0.25@w10,wmax,max,pool5" | tee "$OUT/speed.md"
fi
if [ "$PART" = probe ] || [ "$PART" = all ]; then
  for t in passkey single; do bench --probe "$t" --lengths "$LENGTH" --trials 5; done | tee "$OUT/probe.md"
fi
PARE="dotnet src/Pare.Cli/bin/Release/net10.0/Pare.Cli.dll"
if [ "$PART" = sweep ] || [ "$PART" = all ]; then
  dotnet build -c Release -v q src/Pare.Cli >/dev/null
  V="--lazy-window 10 --lazy-window-reduce max --lazy-heads max --lazy-pool 5"
  # keep per pruning layer for an ideal of ~1.5-1.6x at 2,024 tokens (layer 5: 0.1, the most layer 5 allows is 1.6x)
  for at in "0.125 0.7" "0.25 0.6" "0.375 0.5" "0.5 0.4" "0.625 0.1"; do
    read -r f k <<<"$at"
    for imp in "paper|" "variant|$V" "same, pool 5|--lazy-score same --lazy-pool 5"; do
      IFS='|' read -r name args <<<"$imp"
      for t in passkey single; do
        acc=$($PARE needle "$MODEL" --task "$t" --lengths "$LENGTH" --depths 0,0.5,1 --trials 10 --seed "$SEED" --threads 1 \
          --prefill-prune lazyllm --keep "$k" --prune-at "$f" $args --json | python3 -c "import json,sys; j=json.load(sys.stdin); print('%.1f\t%s' % (100 * j['accuracy'], '/'.join('%.0f' % (100 * c['accuracy']) for c in j['cells'])))")
        printf '%s\t%s\t%s\t%s\t%s\n' "$f" "$k" "$name" "$t" "$acc" | tee -a "$OUT/sweep.tsv"
      done
    done
  done
fi
if [ "$PART" = accuracy ] || [ "$PART" = all ]; then
  S="--prefill-prune lazyllm --lazy-score same --lazy-pool 5"
  SETTINGS="full|--prefill-prune none --seed $SEED
keep 0.3, layer 4, same-layer score, pool 5|$S --keep 0.3 --prune-at 0.5 --seed $SEED
keep 0.3 / 0.3, layers 4 / 6, same-layer score, pool 5|$S --keep 0.3,0.3 --prune-at 0.5,0.75 --seed $SEED
keep 0.2, layer 4, same-layer score, pool 5|$S --keep 0.2 --prune-at 0.5 --seed $SEED
keep 0.2 / 0.3, layers 4 / 6, same-layer score, pool 5|$S --keep 0.2,0.3 --prune-at 0.5,0.75 --seed $SEED
keep 0.1, layer 5 (paper's importance)|--prefill-prune lazyllm --keep 0.1 --prune-at 0.625 --seed $SEED
keep 0.2, layer 4 (paper's importance), pool 5|--prefill-prune lazyllm --keep 0.2 --prune-at 0.5 --lazy-pool 5 --seed $SEED"
  # Another seed confirms: full, the chosen settings (keep 0.3 at layer 4, and 0.3 again at layer 6), keep 0.2 at layer 4
  # and the paper's at layer 5.
  [ "$SEED" = 1 ] || SETTINGS=$(printf '%s\n' "$SETTINGS" | grep -E "^full|^keep 0.[23], layer 4, same|^keep 0.3 / 0.3|layer 5")
  SETTINGS=$SETTINGS benchmarks/lazyllm-ttft.sh "$MODEL" "$LENGTH" "$TRIALS" "$OUT/acc-$LENGTH-seed$SEED"
fi
