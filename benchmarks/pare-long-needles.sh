#!/usr/bin/env bash
# pare-long's needle accuracy with the full KV cache at its trained context (issue #14's first acceptance point): every
# task at 512 / 1,024 / 2,024 tokens x depths, greedy, exact match, one thread per run and two runs at a time.
# Usage: benchmarks/pare-long-needles.sh [MODEL] [OUT_DIR]   (default models/pare-long.gguf, .cache/pare-long-needles)
#   env: TRIALS=100 (per cell) DEPTHS=0,0.5,1 LENGTHS=512,1024,2024
#        TASKS="passkey single multi conditional threading multi-thread"
# Writes OUT_DIR/<task>.json, a length x depth heatmap PNG per task (benchmarks/Pare.Plots) and OUT_DIR/needles.md.
set -euo pipefail
MODEL=${1:-models/pare-long.gguf}; OUT=${2:-.cache/pare-long-needles}
TRIALS=${TRIALS:-100}; DEPTHS=${DEPTHS:-0,0.5,1}; LENGTHS=${LENGTHS:-512,1024,2024}
TASKS=${TASKS:-passkey single multi conditional threading multi-thread}
mkdir -p "$OUT"
dotnet build -c Release -v q src/Pare.Cli >/dev/null
dotnet build -c Release -v q benchmarks/Pare.Plots >/dev/null
PARE="dotnet src/Pare.Cli/bin/Release/net10.0/Pare.Cli.dll"
PLOTS="dotnet benchmarks/Pare.Plots/bin/Release/net10.0/Pare.Plots.dll"
start=$(date -u +%T); load=$(uptime | sed 's/.*load/load/')
run() {
  $PARE needle "$MODEL" --task "$1" --lengths "$LENGTHS" --depths "$DEPTHS" --trials "$TRIALS" --threads 1 --json > "$OUT/$1.json.tmp"
  mv "$OUT/$1.json.tmp" "$OUT/$1.json"
  $PLOTS needle "$OUT/$1.json" "$OUT/$1.png" "pare-long, $1, full KV, $TRIALS trials per cell" >/dev/null
}
set -- $TASKS
while [ $# -gt 0 ]; do
  run "$1" & a=$!; b=""
  if [ $# -gt 1 ]; then run "$2" & b=$!; fi
  wait $a; [ -n "$b" ] && wait $b
  shift; [ $# -gt 0 ] && shift
done
python3 - "$OUT" "$MODEL" "$TRIALS" "$start" "$load" "$(uptime | sed 's/.*load/load/')" $TASKS <<'PY' | tee "$OUT/needles.md"
import json, sys
out, model, trials, start, load0, load1, *tasks = sys.argv[1:]
first = json.load(open(f"{out}/{tasks[0]}.json"))
lengths, depths = first["lengths"], first["depths"]
print(f"`benchmarks/pare-long-needles.sh {model}` (TRIALS={trials}), started {start} UTC, {load0} -> {load1}\n")
print("| task | " + " | ".join(f"{L}: depth {' / '.join(f'{d:g}' for d in depths)}" for L in lengths) + " | overall |")
print("|---|" + "---|" * (len(lengths) + 1))
for t in tasks:
    d = json.load(open(f"{out}/{t}.json"))
    cells = {(c["length"], c["depth"]): c["accuracy"] for c in d["cells"]}
    print(f"| {t} | " + " | ".join(" / ".join(f"{100 * cells[(L, x)]:.0f}" for x in depths) + "%" for L in lengths) + f" | **{100 * d['accuracy']:.1f}%** |")
PY
