#!/usr/bin/env bash
# KV-policy accuracy table (issue #14): every policy x budgets 12.5/25/50% of the context x tasks, with pare needle.
# Usage: benchmarks/kv-policy-table.sh [MODEL] [OUT_DIR]   (env: TRIALS=100 LENGTH=2024 DEPTHS=0,0.25,0.5,0.75,1
#        TASKS="passkey single" THREADS=2 POLICIES="full streaming h2o snapkv quest tokenselect actqkv")
# Writes OUT_DIR/<task>-<policy>-<budget>.json, OUT_DIR/kv-policy-table.md (accuracy %, rows policy x budget, columns tasks)
# and a heatmap PNG per run (length x depth) via benchmarks/Pare.Plots.
set -euo pipefail
MODEL=${1:-models/pare-long.gguf}
OUT=${2:-.cache/kv-policy-table}
TRIALS=${TRIALS:-100}; LENGTH=${LENGTH:-2024}; DEPTHS=${DEPTHS:-0,0.25,0.5,0.75,1}; THREADS=${THREADS:-2}
TASKS=${TASKS:-passkey single}
POLICIES=${POLICIES:-full streaming h2o snapkv quest tokenselect actqkv}
CTX=$((LENGTH + 24))
mkdir -p "$OUT"
dotnet build -c Release -v q src/Pare.Cli >/dev/null
dotnet build -c Release -v q benchmarks/Pare.Plots >/dev/null
PARE="dotnet src/Pare.Cli/bin/Release/net10.0/Pare.Cli.dll"
PLOTS="dotnet benchmarks/Pare.Plots/bin/Release/net10.0/Pare.Plots.dll"
acc() { python3 -c "import json,sys; print('%.1f' % (100*json.load(open(sys.argv[1]))['accuracy']))" "$1"; }
{
  echo "| policy | budget | $(echo $TASKS | sed 's/ / | /g') |"
  echo "|---|---|$(for t in $TASKS; do printf -- '---|'; done)"
  for p in $POLICIES; do
    budgets=$([ "$p" = full ] && echo "$CTX" || echo "$((CTX / 8)) $((CTX / 4)) $((CTX / 2))")
    for b in $budgets; do
      row="| $p | $b ($((100 * b / CTX))%) |"
      for t in $TASKS; do
        f="$OUT/$t-$p-$b.json"
        # A run already in OUT_DIR is kept (the table resumes after an interruption; delete the JSON to redo it).
        if [ ! -s "$f" ]; then
          $PARE needle "$MODEL" --task "$t" --lengths "$LENGTH" --depths "$DEPTHS" --trials "$TRIALS" --threads "$THREADS" \
            --kv-policy "$p" --kv-budget "$b" --json > "$f.tmp" && mv "$f.tmp" "$f"
          $PLOTS needle "$f" "$OUT/$t-$p-$b.png" "$t, $p, budget $b of $CTX" >/dev/null
        fi
        row="$row $(acc "$f")% |"
      done
      echo "$row"
    done
  done
} | tee "$OUT/kv-policy-table.md"
