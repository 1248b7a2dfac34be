#!/usr/bin/env bash
# LazyLLM (issue #14): time to first token and needle accuracy of pruned prefill vs full prefill, passkey and single needle.
# Usage: benchmarks/lazyllm-ttft.sh MODEL [LENGTH] [TRIALS] [OUT_DIR]
#   LENGTH: prompt tokens (default 488: the shipped stage-4d pare-long retrieves at 512; 2024 for the 2048-window model, which
#   switches the default settings to LONG_SETTINGS below); TRIALS per depth (default 20; 3 depths).
#   env: DEPTHS=0,0.5,1 TASKS="passkey single" THREADS=1 PARE="dotnet path/Pare.Cli.dll"
#        SETTINGS: lines "label|pare needle options" (default below: the paper's schedule, then the documented variants).
# Each LazyLLM run also times a full prefill of every prompt in the same process, alternating the order (--compare-full):
# the speed-up is the median over trials of full / pruned time to first token. "work" is the share of (token, layer) blocks
# the pruned prefill computes (ceil(kept x keep) at each pruning layer), then the share of its multiply-adds (projections
# and FFN per token, plus causal attention, quadratic in the tokens a layer computes): the speed-up an unloaded machine can
# approach (the second counts attention's share, large at long prompts; with --lazy-score same it includes the scoring pass:
# the pruning layer's keys of every remaining token and the window's queries and scores).
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
# At the 2048-window model's trained context (LENGTH >= 1024) the default is the schedules that can keep the needle
# (pruning from layer 4 or 5, where the look-up happens) plus the paper's, for comparison.
LONG_SETTINGS="full|--prefill-prune none
paper: keep 0.5, layers 2/4/6|--prefill-prune lazyllm --keep 0.5
keep 0.7, layers 5/6/7|--prefill-prune lazyllm --keep 0.7 --prune-at 0.625,0.75,0.875
keep 0.2, layer 5|--prefill-prune lazyllm --keep 0.2 --prune-at 0.625
keep 0.1, layer 5|--prefill-prune lazyllm --keep 0.1 --prune-at 0.625
keep 0.05, layer 5|--prefill-prune lazyllm --keep 0.05 --prune-at 0.625
keep 0.3, layer 4|--prefill-prune lazyllm --keep 0.3 --prune-at 0.5"
if [ "$LENGTH" -ge 1024 ]; then DEFAULT_SETTINGS=$LONG_SETTINGS; fi
SETTINGS=${SETTINGS:-$DEFAULT_SETTINGS}
mkdir -p "$OUT"
if [ -z "${PARE:-}" ]; then dotnet build -c Release -v q src/Pare.Cli >/dev/null; PARE="dotnet src/Pare.Cli/bin/Release/net10.0/Pare.Cli.dll"; fi
$PARE info "$MODEL" --json > "$OUT/info.json"
echo "started $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" > "$OUT/log.txt"
{
  echo "| prefill | work: blocks / multiply-adds (ideal speed-up) | $(for t in $TASKS; do printf '%s | ' "$t"; done)median time to first token, pruned vs full, $(echo $TASKS | sed 's| | / |g') | median speed-up |"
  echo "|---|---|$(for t in $TASKS; do printf -- '---|'; done)---|---|"
  n=0
  while IFS='|' read -r label args; do
    [ -z "$label" ] && continue
    n=$((n + 1)); accs=""; times=""; sps=""; work=1; flops=1
    compare=$([[ "$args" == *lazyllm* ]] && echo --compare-full || true)
    for t in $TASKS; do
      f="$OUT/$t-$n.json"
      [ -s "$f" ] || { $PARE needle "$MODEL" --task "$t" --lengths "$LENGTH" --depths "$DEPTHS" --trials "$TRIALS" --threads "$THREADS" $args $compare --json > "$f.tmp" && mv "$f.tmp" "$f"; }
      read -r acc ms fullms sp work flops <<<"$(python3 - "$f" "$OUT/info.json" <<'PY'
import json, math, sys
j = json.load(open(sys.argv[1])); c = json.load(open(sys.argv[2])); layers = c['layers']
keep = j.get('keep') or []; at = j.get('prune_layers') or []
k = dict(zip(at, keep if len(keep) == len(at) else keep * len(at)))
n = j['cells'][0]['length'] if 'cells' in j else j['lengths'][0]
qd, kvd = c['heads'] * c['head_dim'], c['kv_heads'] * c['head_dim']
per_token = c['dim'] * (qd + 2 * kvd) + qd * c['dim'] + 3 * c['dim'] * c['ffn_dim']   # projections + SwiGLU
cost = lambda t: t * per_token + qd * t * (t + 1)                                       # + causal QK and AV
t, blocks, macs = n, 0, 0
window = j.get('lazy_window') or 1
same = j.get('lazy_score') == 'same'
for l in range(layers):
    if k.get(l, 1.0) < 1 and t > window:
        if same: macs += t * c['dim'] * kvd + window * (c['dim'] * qd + qd * t)   # the layer's keys of every token, the window's queries and scores
        t = max(window, math.ceil(t * k[l]))
    blocks += t; macs += cost(t)
full = j.get('median_full_prefill_seconds') or j['median_prefill_seconds']
print('%.1f %.0f %.0f %.2fx %.3f %.3f' % (100 * j['accuracy'], 1000 * j['median_prefill_seconds'], 1000 * full, j.get('median_ttft_speedup') or 1.0, blocks / (layers * n), macs / (layers * cost(n))))
PY
)"
      accs="$accs $acc% |"; times="$times${times:+ / }$ms vs $fullms ms"; sps="$sps${sps:+ / }$sp"
    done
    echo "| $label | $work / $flops ($(python3 -c "print('%.2fx / %.2fx' % (1 / $work, 1 / $flops))")) |$accs $times | $sps |"
  done <<< "$SETTINGS"
} | tee "$OUT/lazyllm-ttft.md"
echo "ended $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/log.txt"
