#!/usr/bin/env bash
# TokenSelect length extrapolation (issue #14): pare-long at its trained length and at 2x it, full KV cache vs tokenselect
# with RoPE over the gathered sequence (--kv-renumber on, the default) and over true positions (off).
# Usage: benchmarks/tokenselect-extrapolation.sh MODEL TRAINED_LEN [TRIALS] [OUT_DIR]
#   TRAINED_LEN: the windows the model was trained on (512 for the shipped stage-4d pare-long, 2048 for stage 4h).
#   TRIALS: per (length, depth) cell (default 20; 3 depths -> 60 per row and length).
#   env: DEPTHS=0,0.5,1 TASKS="passkey single" THREADS=1 BUDGETS="TRAINED/2" RENUMBER="on off"
#        CHUNK=TRAINED/4: tokenselect prefills in chunks of CHUNK tokens, each attending to its selection of the prefix (as
#        the reference's chunked prefill), so with re-numbering no position exceeds BUDGET + CHUNK (<= TRAINED by default)
#        LENGTHS="TRAINED-24 2*TRAINED-24" (prompt tokens; 24 more are kept for the answer) PARE="dotnet path/Pare.Cli.dll"
# Writes OUT_DIR/<task>-<policy>-<budget>-<renumber>.json and OUT_DIR/tokenselect-extrapolation.md (accuracy % per length).
set -euo pipefail
MODEL=${1:?usage: MODEL TRAINED_LEN [TRIALS] [OUT_DIR]}
TRAINED=${2:?usage: MODEL TRAINED_LEN [TRIALS] [OUT_DIR]}
TRIALS=${3:-20}
OUT=${4:-.cache/tokenselect-extrapolation}
DEPTHS=${DEPTHS:-0,0.5,1}; THREADS=${THREADS:-1}; TASKS=${TASKS:-passkey single}
BUDGETS=${BUDGETS:-$((TRAINED / 2))}
CHUNK=${CHUNK:-$((TRAINED / 4))}
RENUMBER=${RENUMBER:-on off}
LENGTHS=${LENGTHS:-$((TRAINED - 24)),$((2 * TRAINED - 24))}
mkdir -p "$OUT"
# PARE: the CLI to run (default: build this checkout and use its Release output)
if [ -z "${PARE:-}" ]; then dotnet build -c Release -v q src/Pare.Cli >/dev/null; PARE="dotnet src/Pare.Cli/bin/Release/net10.0/Pare.Cli.dll"; fi
# accuracy per length of a run's JSON: "a% / b%" in the order of LENGTHS
acc() { python3 -c "
import json,sys
j=json.load(open(sys.argv[1]))
print(' | '.join('%.1f%%' % (100*sum(c['accuracy'] for c in j['cells'] if c['length']==l)/max(1,sum(1 for c in j['cells'] if c['length']==l))) for l in j['lengths']))" "$1"; }
run() {   # task policy budget renumber
  local f="$OUT/$1-$2-$3-$4.json" extra=()
  [ "$2" = tokenselect ] && extra=(--kv-budget "$3" --kv-renumber "$4" --prefill-chunk "$CHUNK")
  if [ ! -s "$f" ]; then
    $PARE needle "$MODEL" --task "$1" --lengths "$LENGTHS" --depths "$DEPTHS" --trials "$TRIALS" --threads "$THREADS" \
      --kv-policy "$2" "${extra[@]}" --json > "$f.tmp" && mv "$f.tmp" "$f"
  fi
  acc "$f"
}
echo "started $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" > "$OUT/log.txt"
{
  hdr="| task | policy | budget, prefill chunk | renumber |"; sep="|---|---|---|---|"
  for l in ${LENGTHS//,/ }; do hdr="$hdr $l |"; sep="$sep---|"; done
  echo "$hdr"; echo "$sep"
  for t in $TASKS; do
    echo "| $t | full | all | - | $(run "$t" full all -) |"
    for b in $BUDGETS; do
      for r in $RENUMBER; do echo "| $t | tokenselect | $b, $CHUNK | $r | $(run "$t" tokenselect "$b" "$r") |"; done
    done
  done
} | tee "$OUT/tokenselect-extrapolation.md"
echo "ended $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/log.txt"
