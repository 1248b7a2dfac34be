#!/usr/bin/env bash
# Issue #18's auto:FILE bound in one command: `auto` choosing among all drafters, the draft model's included
# (auto:DRAFT), beside drafter-free `auto` and prompt lookup (pld, the best single drafter in every category of the
# quiet runs of sessions 9-11), on benchmarks/spec/prompts.jsonl (prose, quote, lists, out-of-domain), greedy, 2 threads,
# LANES independent copies of each run per prompt in alternating order (bench-spec --lanes), RUNS runs. Per category
# and run: auto:DRAFT / pld and auto / pld (speedups pooled over lanes), auto:DRAFT / auto, and the run's A/A noise (the
# larger |1 - aa| of the three); then the medians over runs. Writes $OUT/spec-autodraft-lanes{1..RUNS}.json (raw) and
# $OUT/spec-autodraft.json (summary, machine load, time). With BASE=path to another build's Pare.Cli, each run is
# preceded by the same run of that build ($OUT/spec-autodraft-base{i}.json): before/after side by side.
# Sized for ~3 minutes a run on a quiet 2-core machine. Run from the repository root:
#   benchmarks/spec/autodraft.sh [PARE] [MODEL] [DRAFT]
# (defaults: the Release build of src/Pare.Cli, models/pare-ref.gguf, models/pare-ref-draft.gguf); LIMIT (default 8),
# N (128), RUNS (3), LANES (4), OUT (docs), BASE from the environment.
set -euo pipefail
PARE=${1:-src/Pare.Cli/bin/Release/net10.0/Pare.Cli}
MODEL=${2:-models/pare-ref.gguf}
D=${3:-models/pare-ref-draft.gguf}
LIMIT=${LIMIT:-8}; N=${N:-128}; RUNS=${RUNS:-3}; LANES=${LANES:-4}; OUT=${OUT:-docs}; BASE=${BASE:-}
mkdir -p "$OUT"
start=$(date +%s)
load_before=$(uptime)
bench() { "$1" bench-spec "$MODEL" --prompts benchmarks/spec/prompts.jsonl --threads 2 --limit "$LIMIT" -n "$N" \
  --drafters "auto,auto:$D,pld" --lanes "$LANES" --json > "$2" || { rc=$?; [ $rc -eq 2 ] && echo "output differs from plain decoding (see $2)" >&2; exit $rc; }; }
for i in $(seq 1 "$RUNS"); do
  if [ -n "$BASE" ]; then
    echo "base run $i of $RUNS ($(date -u +%T), $(uptime | sed 's/.*load/load/'))" >&2
    bench "$BASE" "$OUT/spec-autodraft-base$i.json"
  fi
  echo "run $i of $RUNS ($(date -u +%T), $(uptime | sed 's/.*load/load/'))" >&2
  bench "$PARE" "$OUT/spec-autodraft-lanes$i.json"
done
load_after=$(uptime)
python3 - "$OUT" "$RUNS" "$D" "$LIMIT" "$N" "$LANES" "$load_before" "$load_after" "$(( $(date +%s) - start ))" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$BASE" <<'PY'
import json, statistics, sys, datetime
out, runs, d, limit, n, lanes, before, after, secs, commit, base = sys.argv[1:12]
runs = int(runs)
def table(prefix):
    data = [json.load(open(f"{out}/{prefix}{i}.json")) for i in range(1, runs + 1)]
    rows = []
    for c in dict.fromkeys(r["category"] for r in data[0]["results"]):
        line = {"category": c, "autod_vs_pld": [], "auto_vs_pld": [], "autod_vs_auto": [], "aa_noise": [], "mat": []}
        for x in data:
            g = {r["drafter"]: r for r in x["results"] if r["category"] == c}
            a, ad, p = g["auto"], g[f"auto:{d}"], g["pld"]
            if not all(r["identical"] for r in g.values()): raise SystemExit(f"{prefix}: output differs from plain decoding ({c})")
            line["autod_vs_pld"].append(ad["speedup"] / p["speedup"]); line["auto_vs_pld"].append(a["speedup"] / p["speedup"])
            line["autod_vs_auto"].append(ad["speedup"] / a["speedup"])
            line["aa_noise"].append(max(abs(1 - r["aa"]) for r in (a, ad, p)) if a.get("aa") is not None else None)
            line["mat"].append({"auto": a["mat"], "auto:draft": ad["mat"], "pld": p["mat"]})
        for k in ("autod_vs_pld", "auto_vs_pld", "autod_vs_auto"): line[k + "_median"] = statistics.median(line[k])
        rows.append(line)
    return rows
new = table("spec-autodraft-lanes")
old = table("spec-autodraft-base") if base else None
summary = {"date_utc": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), "commit": commit, "seconds": int(secs),
           "command": f"benchmarks/spec/autodraft.sh (LIMIT={limit} N={n} RUNS={runs} LANES={lanes}{' BASE=' + base if base else ''})",
           "settings": f"bench-spec greedy, {n} tokens, --limit {limit} per category, max tree 32, 2 threads, drafters auto,auto:{d},pld, --lanes {lanes}",
           "uptime_before": before, "uptime_after": after, "per_category": new, "base_per_category": old}
json.dump(summary, open(f"{out}/spec-autodraft.json", "w"), indent=1)
f = lambda xs: " / ".join(f"{x:.3f}" for x in xs)
for name, rows in (("base", old), ("this build", new)):
    if rows is None: continue
    print(f"{name}:")
    for l in rows:
        print(f"  {l['category']:14s} auto:draft / pld {l['autod_vs_pld_median']:.3f} ({f(l['autod_vs_pld'])}); auto / pld {l['auto_vs_pld_median']:.3f} ({f(l['auto_vs_pld'])}); "
              f"auto:draft / auto {l['autod_vs_auto_median']:.3f}; A/A noise {f(x for x in l['aa_noise'] if x is not None)}")
print(f"{secs} s; {out}/spec-autodraft.json")
PY
