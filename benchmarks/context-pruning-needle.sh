#!/usr/bin/env bash
# Needle tasks with pruned haystacks (issue #19, docs/context-pruning.md, set b): the reader's accuracy on the full
# haystack vs the haystack pruned by each context pruner (RATE of its tokens removed), and its time to first token.
# Usage: benchmarks/context-pruning-needle.sh [READER] [OUT_DIR]
#   env: TASKS="passkey single" LENGTH=2000 DEPTHS=0,0.5,1 TRIALS=3 RATE=0.75 THREADS=2
#        PRUNERS=similarity,provence,coarse-to-fine  NICE=10
# Writes OUT_DIR/needle-<task>.json (raw rows of pare rag-eval --set needle) and OUT_DIR/needle-table.md: per task and
# method the accuracy, its difference to the full haystack (acceptance: within 5 points at 75% removed), needle kept,
# prompt tokens, TTFT and the TTFT ratio full / pruned; the machine's load (uptime) before and after.
set -euo pipefail
READER=${1:-models/pare-long.gguf}
OUT=${2:-.cache/context-pruning-needle}
TASKS=${TASKS:-passkey single}; LENGTH=${LENGTH:-2000}; DEPTHS=${DEPTHS:-0,0.5,1}; TRIALS=${TRIALS:-3}
RATE=${RATE:-0.75}; THREADS=${THREADS:-2}; PRUNERS=${PRUNERS:-similarity,provence,coarse-to-fine}; NICE=${NICE:-10}
mkdir -p "$OUT"
nice -n "$NICE" dotnet build -c Release -v q src/Pare.Cli >/dev/null
PARE="nice -n $NICE dotnet src/Pare.Cli/bin/Release/net10.0/Pare.Cli.dll"
[ -d .cache/models/all-MiniLM-L6-v2 ] || $PARE data models >/dev/null
before=$(uptime); start=$(date -u +%FT%TZ)
for t in $TASKS; do
  f="$OUT/needle-$t.json"
  $PARE rag-eval --set needle --reader "$READER" --task "$t" --lengths "$LENGTH" --depths "$DEPTHS" --trials "$TRIALS" \
    --rate "$RATE" --pruners "$PRUNERS" --threads "$THREADS" --json > "$f.tmp" && mv "$f.tmp" "$f"
done
after=$(uptime); end=$(date -u +%FT%TZ)
python3 - "$OUT" "$READER" "$RATE" "$start" "$end" "$before" "$after" $TASKS <<'EOF' | tee "$OUT/needle-table.md"
import json, sys
out, reader, rate, start, end, before, after, tasks = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8:]
print(f"Reader {reader}, {rate:.0%} of the haystack removed; run {start} .. {end}")
print(f"load before: {before.strip()}\nload after:  {after.strip()}\n")
print("| task | method | accuracy | vs full (points) | needle kept | prompt tokens | TTFT ms | TTFT full / this |")
print("|---|---|---|---|---|---|---|---|")
verdict = []
for t in tasks:
    d = json.load(open(f"{out}/needle-{t}.json"))
    rows = d["rows"]; full = next(r for r in rows if r["Method"] == "full")
    for r in rows:
        diff = 100 * (r["Accuracy"] - full["Accuracy"])
        print(f"| {t} | {r['Method']} | {100*r['Accuracy']:.1f}% | {diff:+.1f} | {100*r['NeedleKept']:.0f}% | {r['PromptTokens']:.0f} | "
              f"{r['TtftMs']:.0f} | {full['TtftMs']/r['TtftMs']:.2f}x |")
        if r["Method"] != "full": verdict.append((t, r["Method"], diff))
print()
best = {}
for t, m, diff in verdict: best[t] = max(best.get(t, -1e9), diff)
for t in tasks:
    print(f"{t}: best pruner within 5 points of full: {'yes' if best[t] >= -5 else 'no'} (best {best[t]:+.1f} points)"
          + (" -- the reader scores 0% on the full haystack, so this says nothing yet" if json.load(open(f"{out}/needle-{t}.json"))["rows"][0]["Accuracy"] == 0 else ""))
EOF
