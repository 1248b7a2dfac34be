#!/usr/bin/env bash
# Speed of structured-pruning results, Pare and llama.cpp side by side (issue 13): the 852M random model
# (.cache/bench/random-852m-F16.gguf, made by benchmarks/Pare.SideBySide) pruned by 20% and 50% with magnitude-sp
# (uniform: plain llama files) and adaptive FLAP (llama.cpp's heterogeneous `deci` files), then prefill and decode tok/s of each
# file in both engines (Pare.SideBySide --pairs: same file for both, alternating rounds, medians), each engine against its
# own dense model: speedup = pruned tok/s / dense tok/s, beside the bytes ratio dense/pruned (decode reads every weight
# once per token, so a memory-bound engine's ideal decode speedup is the bytes ratio).
#
#   benchmarks/structured-speed.sh [OUT.md]      (default /tmp/structured-speed.md; ~5 min on 2 quiet cores)
#   env: THREADS=2 PREFILL=32 DECODE=16 ROUNDS=2 RATIOS="20 50" METHODS="magnitude-sp flap" BENCH=.cache/bench
#
# The pruned files are made once (random calibration: 8 windows of 64 tokens; pruning the 852M model takes a few
# minutes) and kept in $BENCH. Runs everything under nice -n 10. Under load the numbers are indicative only.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/structured-speed.md}
THREADS=${THREADS:-2} PREFILL=${PREFILL:-32} DECODE=${DECODE:-16} ROUNDS=${ROUNDS:-2}
RATIOS=${RATIOS:-"20 50"} METHODS=${METHODS:-"magnitude-sp flap"} BENCH=${BENCH:-.cache/bench}
DENSE=$BENCH/random-852m-F16.gguf
[ -f "$DENSE" ] || { echo "structured-speed: error: $DENSE not found (make it with benchmarks/Pare.SideBySide)" >&2; exit 1; }
nice -n 10 dotnet build -c Release -v q src/Pare.Cli >/dev/null
nice -n 10 dotnet build -c Release -v q benchmarks/Pare.SideBySide >/dev/null
PARE="nice -n 10 dotnet src/Pare.Cli/bin/Release/net10.0/Pare.Cli.dll"
PAIRS="dense=$DENSE:$DENSE"
for r in $RATIOS; do
  for m in $METHODS; do
    f=$BENCH/random-852m-F16-$m-$r.gguf
    if [ ! -f "$f" ]; then
      echo "pruning $m $r% -> $f" >&2
      $PARE prune "$DENSE" --method "$m" --ratio "0.$r" --calib-random --samples 8 --seqlen 64 --threads "$THREADS" -o "$f" --json > "$f.json"
    fi
    PAIRS="$PAIRS,$m-$r=$f:$f"
  done
done
RAW=$(mktemp)
nice -n 10 dotnet benchmarks/Pare.SideBySide/bin/Release/net10.0/Pare.SideBySide.dll --threads "$THREADS" --prefill "$PREFILL" \
  --decode "$DECODE" --rounds "$ROUNDS" --pairs "$PAIRS" | tee "$RAW"
python3 - "$RAW" "$OUT" "$BENCH" "$DENSE" <<'EOF'
import sys, os, json
raw, out, bench, dense = sys.argv[1:5]
lines = open(raw).read().splitlines()
rows = {}
for l in lines:
    c = [x.strip() for x in l.strip().strip('|').split('|')]
    if len(c) >= 10 and c[0] not in ('format', '---') and not c[0].startswith('-'):
        # format, file GB, Pare prefill, llama prefill, ratio, Pare GFLOP/s, llama GFLOP/s, Pare decode, llama decode, ...
        # sizes from the files themselves (the dense file may be a symlink: the table's column would show the link's size)
        path = dense if c[0] == 'dense' else os.path.join(bench, f"random-852m-F16-{c[0]}.gguf")
        rows[c[0]] = dict(gb=os.path.getsize(path) / 1e9, pp=float(c[2]), lp=float(c[3]), pd=float(c[7]), ld=float(c[8]))
d = rows['dense']
res = ["| file | removed (block params) | arch | GB | bytes ratio dense/pruned | Pare prefill tok/s | speedup | llama.cpp prefill tok/s | speedup | Pare decode tok/s | speedup | llama.cpp decode tok/s | speedup | Pare decode speedup / bytes ratio | llama.cpp decode speedup / bytes ratio |",
       "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
for k, r in rows.items():
    removed, arch = '0%', 'llama'
    j = os.path.join(bench, f"random-852m-F16-{k}.gguf.json")
    if os.path.exists(j):
        try:
            js = json.load(open(j)); removed = f"{js.get('removed', 0)*100:.1f}%"; arch = js.get('architecture', '?')
        except Exception: pass
    br = d['gb'] / r['gb']
    res.append(f"| {k} | {removed} | {arch} | {r['gb']:.2f} | {br:.2f} | {r['pp']:.1f} | {r['pp']/d['pp']:.2f}x | {r['lp']:.1f} | {r['lp']/d['lp']:.2f}x | "
               f"{r['pd']:.1f} | {r['pd']/d['pd']:.2f}x | {r['ld']:.1f} | {r['ld']/d['ld']:.2f}x | {r['pd']/d['pd']/br:.2f} | {r['ld']/d['ld']/br:.2f} |")
hdr = [l for l in lines if l.startswith(('Machine', 'Model', 'Settings', 'Load average', '# '))]
open(out, 'w').write('\n'.join(hdr) + '\n\n' + '\n'.join(res) + '\n')
print('\n'.join(res)); print(f"wrote {out}")
EOF
rm -f "$RAW"
