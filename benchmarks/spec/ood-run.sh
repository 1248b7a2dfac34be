#!/usr/bin/env bash
# Out-of-domain check of `auto` as a new user meets it: `pare run` with its defaults (temperature 0.8, seed 0), 96 tokens,
# each prompt of benchmarks/spec/ood-prompts.jsonl, --draft none and auto in pairs, the order swapped every pair (so neither
# always runs right after the other). RUNS runs (the issue's "three runs"), each ROUNDS pairs per prompt (default 3: a
# 96-token decode takes ~70 ms, and single processes of it scatter by more than the 2% being checked). Prints per prompt
# the median decode tok/s of each over all RUNS x ROUNDS pairs and their ratio, the median ratio of each run, and the
# median ratio over prompts (decode, and end to end: prompt pass included). One untimed pair first (the cost cache
# and the file cache are then warm, as for a user's second call).
# Usage: benchmarks/spec/ood-run.sh PARE MODEL [RUNS] [JSON_OUT]   (JSON_OUT: also write the figures there; ROUNDS from the environment)
set -euo pipefail
PARE=$1; MODEL=$2; RUNS=${3:-3}; OUT=${4:-}; ROUNDS=${ROUNDS:-3}
python3 - "$PARE" "$MODEL" "$RUNS" "$OUT" "$ROUNDS" <<'PY'
import json, statistics, subprocess, sys
pare, model, runs, out, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
prompts = [json.loads(l)["prompt"] for l in open("benchmarks/spec/ood-prompts.jsonl") if l.strip()]
def run(p, d):
    o = json.loads(subprocess.run([pare, "run", model, "-p", p, "-n", "96", "--threads", "2", "--draft", d, "--json"],
                                  check=True, capture_output=True, text=True).stdout)
    return o["decode_tok_s"], o["prompt_s"] + (len(o["tokens"]) - 1) / o["decode_tok_s"], o["mean_accepted"]
run(prompts[0], "none"); run(prompts[0], "auto")
# samples[prompt][drafter] per run: lists of (decode tok/s, total seconds)
samples = [[{"none": [], "auto": []} for _ in prompts] for _ in range(runs)]
mats = [[] for _ in prompts]
pair = 0
for r in range(runs):
    for i, p in enumerate(prompts):
        for k in range(rounds):
            for d in (("none", "auto") if pair % 2 == 0 else ("auto", "none")):
                tps, total, mat = run(p, d)
                samples[r][i][d].append((tps, total))
                if d == "auto": mats[i].append(mat)
            pair += 1
def ratios(groups):
    dec = statistics.median([x[0] for x in groups["auto"]]) / statistics.median([x[0] for x in groups["none"]])
    e2e = statistics.median([x[1] for x in groups["none"]]) / statistics.median([x[1] for x in groups["auto"]])
    return dec, e2e
run_medians = [statistics.median(ratios(samples[r][i])[0] for i in range(len(prompts))) for r in range(runs)]
rows, dec_all, e2e_all = [], [], []
for i, p in enumerate(prompts):
    pooled = {d: [x for r in range(runs) for x in samples[r][i][d]] for d in ("none", "auto")}
    dec, e2e = ratios(pooled)
    dec_all.append(dec); e2e_all.append(e2e)
    none_tps = statistics.median(x[0] for x in pooled["none"]); auto_tps = statistics.median(x[0] for x in pooled["auto"])
    rows.append({"prompt": p, "none_tok_s": none_tps, "auto_tok_s": auto_tps, "ratio": dec, "ratio_end_to_end": e2e,
                 "auto_mat": statistics.median(mats[i]), "pairs": len(pooled["none"])})
    print(f"none {none_tps:7.1f} tok/s  auto {auto_tps:7.1f} tok/s  ratio {dec:.3f}  end to end {e2e:.3f}  MAT {statistics.median(mats[i]):.2f}  | {p[:40]}")
print(f"per run (median over prompts of each run's {rounds}-pair medians): {' / '.join(f'{x:.3f}' for x in run_medians)}; median of the {runs} runs {statistics.median(run_medians):.3f}")
print(f"median ratio auto/none (per prompt over all {runs * rounds} pairs): {statistics.median(dec_all):.3f} (min {min(dec_all):.3f}, max {max(dec_all):.3f}); end to end {statistics.median(e2e_all):.3f}")
if out:
    json.dump({"settings": f"pare run defaults (temperature 0.8, seed 0), 96 tokens, 2 threads, none and auto in pairs, order swapped every pair, {runs} runs x {rounds} pairs per prompt",
               "runs": runs, "rounds": rounds, "median_ratio": statistics.median(dec_all), "median_ratio_end_to_end": statistics.median(e2e_all),
               "run_median_ratios": run_medians, "median_of_run_ratios": statistics.median(run_medians), "prompts": rows}, open(out, "w"), indent=1)
PY
