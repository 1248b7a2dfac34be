#!/usr/bin/env bash
# Issue #18's acceptance table in one command: every drafter on every category of benchmarks/spec/prompts.jsonl
# (prose, quote, lists, out-of-domain), greedy, 2 threads, three bench-spec runs and their medians, then the
# out-of-domain `pare run` check (ood-run.sh, temperature 0.8, three runs of ROUNDS=3 none/auto pairs per prompt). Writes docs/spec-acceptance-run{1,2,3}.json
# (raw), docs/spec-acceptance-ood.json and docs/spec-acceptance.json (medians, per category the best single drafter and
# how auto / auto:DRAFT compare, machine state). Then the paired check of auto against the best single drafter: one
# run of the full table does not resolve 3% (per-run ratios of one category moved by up to 0.27 in session 10's quiet
# runs), so RUNS more bench-spec runs of only plain decoding, auto and each category's best single drafter (from the
# table's medians), every one in LANES independent copies (own warm state and step rates) run per prompt in alternating
# order (bench-spec --lanes): auto / best per category and run from the pooled decode times, its median over the runs,
# the median over prompts of the per-prompt ratio (a burst on one prompt cannot move it), the ratio of the times pooled
# over all runs and lanes, and the A/A noise beside them (per run the even lanes' time over the odd lanes' for auto and
# for the best: one run's resolution; the pooled ratio's is about that / sqrt(RUNS));
# docs/spec-acceptance-paired{1,2,3}.json. Sized for <= 10 minutes on a quiet 2-core machine: LIMIT prompts per
# category (default 8), N tokens per prompt (default 128), LANES (default 6). Run from the repository root on a quiet machine:
#   benchmarks/spec/acceptance.sh [PARE] [MODEL] [DRAFT]
# (defaults: the Release build of src/Pare.Cli, models/pare-ref.gguf, models/pare-ref-draft.gguf); LIMIT, N, RUNS, LANES,
# OUT (output folder, default docs) from the environment; PAIRED_ONLY=1 skips the table and the out-of-domain check
# (the paired check alone, against the best single drafters of the last table in OUT).
set -euo pipefail
PARE=${1:-src/Pare.Cli/bin/Release/net10.0/Pare.Cli}
MODEL=${2:-models/pare-ref.gguf}
D=${3:-models/pare-ref-draft.gguf}
LIMIT=${LIMIT:-8}; N=${N:-128}; RUNS=${RUNS:-3}; LANES=${LANES:-6}; OUT=${OUT:-docs}; PAIRED_ONLY=${PAIRED_ONLY:-0}
DRAFTERS="pld,recycle,lookahead,aded,auto,auto:$D,model:$D,tree:$D,dyspec:$D,rasd:$D,self:4"
mkdir -p "$OUT"
start=$(date +%s)
load_before=$(uptime)
if [ "$PAIRED_ONLY" != 1 ]; then
for i in $(seq 1 "$RUNS"); do
  echo "bench-spec run $i of $RUNS ($(date -u +%T), $(uptime | sed 's/.*load/load/'))" >&2
  "$PARE" bench-spec "$MODEL" --prompts benchmarks/spec/prompts.jsonl --threads 2 --limit "$LIMIT" -n "$N" \
    --drafters "$DRAFTERS" --json > "$OUT/spec-acceptance-run$i.json" || { rc=$?; [ $rc -eq 2 ] && echo "output differs from plain decoding (see the JSON)" >&2; exit $rc; }
done
echo "ood-run ($(date -u +%T), $(uptime | sed 's/.*load/load/'))" >&2
benchmarks/spec/ood-run.sh "$PARE" "$MODEL" "$RUNS" "$OUT/spec-acceptance-ood.json"
fi
# The paired check: auto and the best single drafter of each category (table medians), LANES copies each, interleaved.
BEST=$(python3 - "$OUT" "$RUNS" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
data = [json.load(open(f"{out}/spec-acceptance-run{i}.json")) for i in range(1, runs + 1)]
best = {}
for c in dict.fromkeys(r["category"] for r in data[0]["results"]):
    rows = {r["drafter"] for r in data[0]["results"] if r["category"] == c and r["drafter"] != "none" and not r["drafter"].startswith("auto")}
    best[c] = max(rows, key=lambda d: statistics.median(next(r["speedup"] for r in x["results"] if (r["category"], r["drafter"]) == (c, d)) for x in data))
print(",".join(dict.fromkeys(best.values())))
PY
)
for i in $(seq 1 "$RUNS"); do
  echo "paired run $i of $RUNS: auto,$BEST x $LANES lanes ($(date -u +%T), $(uptime | sed 's/.*load/load/'))" >&2
  "$PARE" bench-spec "$MODEL" --prompts benchmarks/spec/prompts.jsonl --threads 2 --limit "$LIMIT" -n "$N" \
    --drafters "auto,$BEST" --lanes "$LANES" --json > "$OUT/spec-acceptance-paired$i.json" || { rc=$?; [ $rc -eq 2 ] && echo "output differs from plain decoding (see the JSON)" >&2; exit $rc; }
done
load_after=$(uptime)
python3 - "$OUT" "$RUNS" "$LIMIT" "$N" "$DRAFTERS" "$load_before" "$load_after" "$(( $(date +%s) - start ))" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$LANES" <<'PY'
import json, statistics, sys, datetime
out, runs, limit, n, drafters, before, after, secs, commit, lanes = sys.argv[1:11]
runs = int(runs)
data = [json.load(open(f"{out}/spec-acceptance-run{i}.json")) for i in range(1, runs + 1)]
keys = [(r["category"], r["drafter"]) for r in data[0]["results"]]
med = {}
for k in keys:
    rs = [next(r for r in d["results"] if (r["category"], r["drafter"]) == k) for d in data]
    med[k] = {"category": k[0], "drafter": k[1], "speedup": [r["speedup"] for r in rs], "mat": [r["mat"] for r in rs],
              "plain_tok_s" if k[1] == "none" else "tok_s": [r["tok_s"] for r in rs],
              "median_speedup": statistics.median(r["speedup"] for r in rs), "median_mat": statistics.median(r["mat"] for r in rs),
              "identical": all(r["identical"] for r in rs)}
cats = list(dict.fromkeys(k[0] for k in keys))
verdict = []
for c in cats:
    rows = [v for (cc, d), v in med.items() if cc == c and d != "none" and not d.startswith("auto")]
    best = max(rows, key=lambda v: v["median_speedup"])
    line = {"category": c, "best_single": best["drafter"], "best_speedup": best["median_speedup"]}
    for a in [d for (cc, d) in med if cc == c and d.startswith("auto")]:
        s = med[(c, a)]["median_speedup"]
        line[a] = {"speedup": s, "vs_best": s / best["median_speedup"]}
    verdict.append(line)
# Paired: per category and run, auto's pooled speedup over the best single drafter's (same run, same plain decoding),
# and the A/A noise of that run: the larger of |1 - aa| of auto and of the best (each lanes' halves against each other).
paired_runs = [json.load(open(f"{out}/spec-acceptance-paired{i}.json")) for i in range(1, runs + 1)]
paired = []
for line in verdict:
    c, b = line["category"], line["best_single"]
    ratios, noise, autos, mats, per_prompt, secs_auto, secs_best = [], [], [], [], [], 0.0, 0.0
    for d in paired_runs:
        a = next(r for r in d["results"] if (r["category"], r["drafter"]) == (c, "auto"))
        s = next(r for r in d["results"] if (r["category"], r["drafter"]) == (c, b))
        ratios.append(a["speedup"] / s["speedup"]); autos.append(a["speedup"]); mats.append((a["mat"], s["mat"]))
        per_prompt.append(statistics.median(y / x for x, y in zip(a["prompt_decode_seconds"], s["prompt_decode_seconds"])))
        secs_auto += sum(a["prompt_decode_seconds"]); secs_best += sum(s["prompt_decode_seconds"])
        noise.append(max(abs(1 - a["aa"]), abs(1 - s["aa"])) if a.get("aa") is not None else None)
        if not (a["identical"] and s["identical"]): raise SystemExit(f"paired run: output differs from plain decoding ({c})")
    paired.append({"category": c, "best_single": b, "auto_vs_best_runs": ratios, "auto_vs_best": statistics.median(ratios),
                   "auto_vs_best_pooled": secs_best / secs_auto,
                   "auto_vs_best_prompt_median_runs": per_prompt, "auto_vs_best_prompt_median": statistics.median(per_prompt),
                   "aa_noise_runs": noise, "aa_noise": statistics.median(x for x in noise if x is not None) if any(x is not None for x in noise) else None,
                   "auto_speedup_runs": autos, "auto_vs_plain": statistics.median(autos), "mat_auto_best_runs": mats})
ood = json.load(open(f"{out}/spec-acceptance-ood.json"))
summary = {"date_utc": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), "commit": commit, "seconds": int(secs),
           "command": f"benchmarks/spec/acceptance.sh (LIMIT={limit} N={n} RUNS={runs} LANES={lanes})",
           "settings": f"bench-spec greedy, {n} tokens, --limit {limit} per category, max tree 32, 2 threads, drafters {drafters}; ood-run.sh: pare run defaults, 96 tokens",
           "uptime_before": before, "uptime_after": after, "identical_to_plain": all(v["identical"] for v in med.values()),
           "per_category": verdict, "paired": {"lanes": int(lanes), "drafters": "auto and each category's best single drafter", "per_category": paired}, "ood_auto_vs_none": {"median_ratio": ood["median_ratio"], "median_ratio_end_to_end": ood["median_ratio_end_to_end"],
                                                          "run_median_ratios": ood.get("run_median_ratios"), "rounds": ood.get("rounds")},
           "medians": list(med.values())}
json.dump(summary, open(f"{out}/spec-acceptance.json", "w"), indent=1)
print(f"{'category':14s} {'drafter':40s} {'speedup (runs)':>28s} {'median':>7s} {'MAT':>5s}")
for v in med.values():
    print(f"{v['category']:14s} {v['drafter']:40s} {' / '.join(f'{x:.2f}' for x in v['speedup']):>28s} {v['median_speedup']:6.2f}x {v['median_mat']:5.2f}")
for l in verdict:
    autos = "; ".join(f"{a}: {x['speedup']:.2f}x ({x['vs_best']:.3f} of best)" for a, x in l.items() if a.startswith("auto"))
    print(f"{l['category']}: best single {l['best_single']} {l['best_speedup']:.2f}x; {autos}")
for p in paired:
    print(f"paired ({lanes} lanes x {runs} runs) {p['category']}: auto / {p['best_single']} {p['auto_vs_best']:.3f} (runs {' / '.join(f'{x:.3f}' for x in p['auto_vs_best_runs'])}), "
          f"pooled over runs {p['auto_vs_best_pooled']:.3f}, per-prompt median {p['auto_vs_best_prompt_median']:.3f}, A/A noise {p['aa_noise']:.3f} (runs {' / '.join(f'{x:.3f}' for x in p['aa_noise_runs'])}); auto / plain {p['auto_vs_plain']:.2f}x")
print(f"out of domain (pare run, sampling): auto/none {ood['median_ratio']:.3f} (per run {' / '.join(f'{x:.3f}' for x in ood.get('run_median_ratios', []))}), end to end {ood['median_ratio_end_to_end']:.3f}")
print(f"{secs} s; {out}/spec-acceptance.json")
PY
