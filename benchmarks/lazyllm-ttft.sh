#!/usr/bin/env bash
# LazyLLM (issue #14): time to first token and needle accuracy of pruned prefill vs full prefill, passkey and single needle.
# Usage: benchmarks/lazyllm-ttft.sh MODEL [LENGTH] [TRIALS] [OUT_DIR]
#   LENGTH: prompt tokens (default 488: the shipped stage-4d pare-long retrieves at 512); TRIALS per depth (default 20; 3 depths).
#   env: DEPTHS=0,0.5,1 TASKS="passkey single" THREADS=1 PARE="dotnet path/Pare.Cli.dll"
#        SETTINGS: lines "label|pare needle options" (default below: the paper's schedule, then the documented variants).
# Writes OUT_DIR/<task>-<n>.json and OUT_DIR/lazyllm-ttft.md: work (share of (token, layer) blocks the prefill computes,
# from the schedule: the speed-up an unloaded machine can approach), accuracy, mean time to first token and its speed-up
# over full prefill (the runs of one setting follow each other; speed figures on a loaded machine are indicative).
set -euo pipefail
MODEL=${1:?usage: MODEL [LENGTH] [TRIALS] [OUT_DIR]}
LENGTH=${2:-488}; TRIALS=${3:-20}; OUT=${4:-.cache/lazyllm-ttft}
DEPTHS=${DEPTHS:-0,0.5,1}; THREADS=${THREADS:-1}; TASKS=${TASKS:-passkey single}
DEFAULT_SETTINGS="full|--prefill-prune none
paper keep 0.5, layers 2/4/6|--prefill-prune lazyllm --keep 0.5
keep 0.7, layers 5/6/7|--prefill-prune lazyllm --keep 0.7 --prune-at 0.625,0.75,0.875
window 16, keep 0.7, layers 2/4/6|--prefill-prune lazyllm --keep 0.7 --lazy-window 16
window 16 max, keep 0.7, layers 2/4/6|--prefill-prune lazyllm --keep 0.7 --lazy-window 16 --lazy-heads max
window 16, keep 0.8/0.5/0.3, layers 4/5/6|--prefill-prune lazyllm --keep 0.8,0.5,0.3 --prune-at 0.5,0.625,0.75 --lazy-window 16
window 16, keep 0.5/0.3/0.2, layers 5/6/7|--prefill-prune lazyllm --keep 0.5,0.3,0.2 --prune-at 0.625,0.75,0.875 --lazy-window 16"
SETTINGS=${SETTINGS:-$DEFAULT_SETTINGS}
mkdir -p "$OUT"
if [ -z "${PARE:-}" ]; then dotnet build -c Release -v q src/Pare.Cli >/dev/null; PARE="dotnet src/Pare.Cli/bin/Release/net10.0/Pare.Cli.dll"; fi
LAYERS=$($PARE info "$MODEL" --json 2>/dev/null | python3 -c "import json,sys; j=json.load(sys.stdin); print(j.get('layers') or j['config']['layers'])" 2>/dev/null || echo 8)
echo "started $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" > "$OUT/log.txt"
{
  echo "| prefill | work (ideal speed-up) | $(for t in $TASKS; do printf '%s | ' "$t"; done)time to first token, $(echo $TASKS | sed 's| | / |g') (speed-up) |"
  echo "|---|---|$(for t in $TASKS; do printf -- '---|'; done)---|"
  n=0; declare -A full
  while IFS='|' read -r label args; do
    [ -z "$label" ] && continue
    n=$((n + 1)); accs=""; times=""; sp=""; work=1
    for t in $TASKS; do
      f="$OUT/$t-$n.json"
      [ -s "$f" ] || { $PARE needle "$MODEL" --task "$t" --lengths "$LENGTH" --depths "$DEPTHS" --trials "$TRIALS" --threads "$THREADS" $args --json > "$f.tmp" && mv "$f.tmp" "$f"; }
      read -r acc ms work <<<"$(python3 - "$f" "$LAYERS" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); layers = int(sys.argv[2])
keep = j.get('keep') or []; at = j.get('prune_layers') or []
frac, w, k = 1.0, 0.0, dict(zip(at, keep if len(keep) == len(at) else keep * len(at)))
for l in range(layers):
    frac *= k.get(l, 1.0); w += frac
print('%.1f %.0f %.3f' % (100 * j['accuracy'], 1000 * j['mean_prefill_seconds'], w / layers))
PY
)"
      [ "$label" = full ] && full[$t]=$ms
      accs="$accs $acc% |"; times="$times${times:+ / }$ms"
      sp="$sp${sp:+ / }$(python3 -c "print('%.2fx' % (${full[$t]:-$ms} / max(1, $ms)))")"
    done
    echo "| $label | $work ($(python3 -c "print('%.2fx' % (1 / $work))")) |$accs $times ms (${sp}) |"
  done <<< "$SETTINGS"
} | tee "$OUT/lazyllm-ttft.md"
echo "ended $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/log.txt"
