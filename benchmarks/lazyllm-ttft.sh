#!/usr/bin/env bash
# LazyLLM (issue #14): time to first token and needle accuracy of pruned prefill vs full prefill, passkey and single needle.
# Usage: benchmarks/lazyllm-ttft.sh MODEL [LENGTH] [TRIALS] [OUT_DIR]
#   LENGTH: prompt tokens (default 488: the shipped stage-4d pare-long retrieves at 512); TRIALS per depth (default 20; 3 depths).
#   env: DEPTHS=0,0.5,1 TASKS="passkey single" THREADS=1 PARE="dotnet path/Pare.Cli.dll"
#        SETTINGS: lines "label|pare needle options" (default below: the paper's schedule, then the documented variants).
# Each LazyLLM run also times a full prefill of every prompt in the same process, alternating the order (--compare-full):
# the speed-up is the median over trials of full / pruned time to first token. "work" is the share of (token, layer) blocks
# the pruned prefill computes (from the schedule: the speed-up an unloaded machine can approach).
# Writes OUT_DIR/<task>-<n>.json and OUT_DIR/lazyllm-ttft.md.
set -euo pipefail
MODEL=${1:?usage: MODEL [LENGTH] [TRIALS] [OUT_DIR]}
LENGTH=${2:-488}; TRIALS=${3:-20}; OUT=${4:-.cache/lazyllm-ttft}
DEPTHS=${DEPTHS:-0,0.5,1}; THREADS=${THREADS:-1}; TASKS=${TASKS:-passkey single}
DEFAULT_SETTINGS="full|--prefill-prune none
paper: keep 0.5, layers 2/4/6|--prefill-prune lazyllm --keep 0.5
keep 0.7, layers 2/4/6, window 16|--prefill-prune lazyllm --keep 0.7 --lazy-window 16
keep 0.7, layers 2/4/6, max over heads|--prefill-prune lazyllm --keep 0.7 --lazy-heads max
keep 0.7, layers 5/6/7|--prefill-prune lazyllm --keep 0.7 --prune-at 0.625,0.75,0.875
keep 0.9/0.5/0.2, layers 5/6/7|--prefill-prune lazyllm --keep 0.9,0.5,0.2 --prune-at 0.625,0.75,0.875
keep 0.2, layer 5|--prefill-prune lazyllm --keep 0.2 --prune-at 0.625
keep 0.5/0.3/0.2, layers 5/6/7, max over heads|--prefill-prune lazyllm --keep 0.5,0.3,0.2 --prune-at 0.625,0.75,0.875 --lazy-heads max"
SETTINGS=${SETTINGS:-$DEFAULT_SETTINGS}
mkdir -p "$OUT"
if [ -z "${PARE:-}" ]; then dotnet build -c Release -v q src/Pare.Cli >/dev/null; PARE="dotnet src/Pare.Cli/bin/Release/net10.0/Pare.Cli.dll"; fi
LAYERS=$($PARE info "$MODEL" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['layers'])")
echo "started $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" > "$OUT/log.txt"
{
  echo "| prefill | work (ideal speed-up) | $(for t in $TASKS; do printf '%s | ' "$t"; done)median time to first token, pruned vs full, $(echo $TASKS | sed 's| | / |g') | median speed-up |"
  echo "|---|---|$(for t in $TASKS; do printf -- '---|'; done)---|---|"
  n=0
  while IFS='|' read -r label args; do
    [ -z "$label" ] && continue
    n=$((n + 1)); accs=""; times=""; sps=""; work=1
    compare=$([[ "$args" == *lazyllm* ]] && echo --compare-full || true)
    for t in $TASKS; do
      f="$OUT/$t-$n.json"
      [ -s "$f" ] || { $PARE needle "$MODEL" --task "$t" --lengths "$LENGTH" --depths "$DEPTHS" --trials "$TRIALS" --threads "$THREADS" $args $compare --json > "$f.tmp" && mv "$f.tmp" "$f"; }
      read -r acc ms fullms sp work <<<"$(python3 - "$f" "$LAYERS" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); layers = int(sys.argv[2])
keep = j.get('keep') or []; at = j.get('prune_layers') or []
frac, w, k = 1.0, 0.0, dict(zip(at, keep if len(keep) == len(at) else keep * len(at)))
for l in range(layers):
    frac *= k.get(l, 1.0); w += frac
full = j.get('median_full_prefill_seconds') or j['median_prefill_seconds']
print('%.1f %.0f %.0f %.2fx %.3f' % (100 * j['accuracy'], 1000 * j['median_prefill_seconds'], 1000 * full, j.get('median_ttft_speedup') or 1.0, w / layers))
PY
)"
      accs="$accs $acc% |"; times="$times${times:+ / }$ms vs $fullms ms"; sps="$sps${sps:+ / }$sp"
    done
    echo "| $label | $work ($(python3 -c "print('%.2fx' % (1 / $work))")) |$accs $times | $sps |"
  done <<< "$SETTINGS"
} | tee "$OUT/lazyllm-ttft.md"
echo "ended $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/log.txt"
