#!/usr/bin/env bash
# Out-of-domain check of `auto` as a new user meets it: `pare run` with its defaults (temperature 0.8, seed 0), 96 tokens,
# each prompt of benchmarks/spec/ood-prompts.jsonl, --draft none and auto alternating (none first in odd rounds, auto first
# in even ones, so neither always runs right after the other), RUNS times; prints per prompt the
# median decode tok/s of each and their ratio, then the median ratio (decode, and end to end: prompt pass included).
# Usage: benchmarks/spec/ood-run.sh PARE MODEL [RUNS] [JSON_OUT]   (JSON_OUT: also write the figures there)
set -euo pipefail
PARE=$1; MODEL=$2; RUNS=${3:-3}; OUT=${4:-}
python3 - "$PARE" "$MODEL" "$RUNS" "$OUT" <<'PY'
import json, statistics, subprocess, sys
pare, model, runs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ratios, e2e, rows = [], [], []
for line in open("benchmarks/spec/ood-prompts.jsonl"):
    p = json.loads(line)["prompt"]
    tps = {"none": [], "auto": []}; total = {"none": [], "auto": []}; mat = []
    for r in range(runs):
        for d in (("none", "auto") if r % 2 == 0 else ("auto", "none")):
            o = json.loads(subprocess.run([pare, "run", model, "-p", p, "-n", "96", "--threads", "2", "--draft", d, "--json"],
                                          check=True, capture_output=True, text=True).stdout)
            tps[d].append(o["decode_tok_s"])
            total[d].append(o["prompt_s"] + (len(o["tokens"]) - 1) / o["decode_tok_s"])
            if d == "auto": mat.append(o["mean_accepted"])
    r = statistics.median(tps["auto"]) / statistics.median(tps["none"])
    t = statistics.median(total["none"]) / statistics.median(total["auto"])
    ratios.append(r); e2e.append(t)
    rows.append({"prompt": p, "none_tok_s": statistics.median(tps["none"]), "auto_tok_s": statistics.median(tps["auto"]),
                 "ratio": r, "ratio_end_to_end": t, "auto_mat": statistics.median(mat), "runs": runs})
    print(f"none {statistics.median(tps['none']):7.1f} tok/s  auto {statistics.median(tps['auto']):7.1f} tok/s  ratio {r:.3f}  end to end {t:.3f}  MAT {statistics.median(mat):.2f}  | {p[:40]}")
print(f"median ratio auto/none: {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); end to end {statistics.median(e2e):.3f}")
if out:
    json.dump({"settings": "pare run defaults (temperature 0.8, seed 0), 96 tokens, 2 threads, none and auto alternating, order swapped every round", "runs": runs,
               "median_ratio": statistics.median(ratios), "median_ratio_end_to_end": statistics.median(e2e), "prompts": rows}, open(out, "w"), indent=1)
PY
