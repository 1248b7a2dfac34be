#!/usr/bin/env bash
# Out-of-domain check of `auto` as a new user meets it: `pare run` with its defaults (temperature 0.8, seed 0), 96 tokens,
# each prompt of benchmarks/spec/ood-prompts.jsonl, --draft none and auto alternating, RUNS times; prints per prompt the
# median decode tok/s of each and their ratio, then the median ratio. Usage: benchmarks/spec/ood-run.sh PARE MODEL [RUNS]
set -euo pipefail
PARE=$1; MODEL=$2; RUNS=${3:-3}
python3 - "$PARE" "$MODEL" "$RUNS" <<'PY'
import json, statistics, subprocess, sys
pare, model, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
ratios = []
for line in open("benchmarks/spec/ood-prompts.jsonl"):
    p = json.loads(line)["prompt"]
    tps = {"none": [], "auto": []}; mat = []
    for _ in range(runs):
        for d in ("none", "auto"):
            out = json.loads(subprocess.run([pare, "run", model, "-p", p, "-n", "96", "--threads", "2", "--draft", d, "--json"],
                                            check=True, capture_output=True, text=True).stdout)
            tps[d].append(out["decode_tok_s"])
            if d == "auto": mat.append(out["mean_accepted"])
    r = statistics.median(tps["auto"]) / statistics.median(tps["none"])
    ratios.append(r)
    print(f"none {statistics.median(tps['none']):7.1f} tok/s  auto {statistics.median(tps['auto']):7.1f} tok/s  ratio {r:.3f}  MAT {statistics.median(mat):.2f}  | {p[:40]}")
print(f"median ratio auto/none: {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")
PY
