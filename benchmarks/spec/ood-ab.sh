#!/usr/bin/env bash
# A/B of out-of-domain decoding across builds or runtime settings: each prompt of benchmarks/spec/ood-prompts.jsonl,
# `pare run` defaults (temperature 0.8, seed 0), 96 tokens, 2 threads, every variant once per round in rotated order,
# RUNS rounds; prints per variant the median decode (and end-to-end) milliseconds per prompt, and for each consecutive
# pair of variants (A, B) the median over prompts of A's time / B's time (B's speed relative to A's), from the median
# and from the fastest of the RUNS timings per prompt (on a shared machine the fastest is the least disturbed).
# Usage: benchmarks/spec/ood-ab.sh RUNS LABEL=PARE:DRAFT[:VAR=VALUE;VAR=VALUE] ...
#   e.g. benchmarks/spec/ood-ab.sh 3 base-none=/tmp/base/Pare.Cli:none base-auto=/tmp/base/Pare.Cli:auto \
#        new-none=src/Pare.Cli/bin/Release/net10.0/Pare.Cli:none new-auto=src/Pare.Cli/bin/Release/net10.0/Pare.Cli:auto
# Run from the repository root. N (tokens, default 96) from the environment.
set -euo pipefail
RUNS=$1; shift
python3 - "$RUNS" "${N:-96}" "$@" <<'PY'
import json, statistics, subprocess, sys, os
runs, n = int(sys.argv[1]), sys.argv[2]
vs = []
for a in sys.argv[3:]:
    label, rest = a.split("=", 1)
    parts = rest.split(":", 2)
    env = dict(os.environ)
    for kv in filter(None, (parts[2] if len(parts) > 2 else "").split(";")):
        k, x = kv.split("=", 1); env[k] = x
    vs.append((label, parts[0], parts[1], env))
prompts = [json.loads(l)["prompt"] for l in open("benchmarks/spec/ood-prompts.jsonl")]
ms = {v[0]: [] for v in vs}; e2e = {v[0]: [] for v in vs}; fast = {v[0]: [] for v in vs}; drafted = {v[0]: [] for v in vs}
for p in prompts:
    per = {v[0]: [] for v in vs}; pe = {v[0]: [] for v in vs}
    for r in range(runs):
        for label, pare, d, env in vs[r % len(vs):] + vs[:r % len(vs)]:
            o = json.loads(subprocess.run([pare, "run", "models/pare-ref.gguf", "-p", p, "-n", n, "--threads", "2", "--draft", d, "--json"],
                                          check=True, capture_output=True, text=True, env=env).stdout)
            dm = (len(o["tokens"]) - 1) / o["decode_tok_s"] * 1000
            per[label].append(dm); pe[label].append(dm + o["prompt_s"] * 1000)
            drafted[label].append(o["steps"] < len(o["tokens"]) - 1)
    for l in per: ms[l].append(statistics.median(per[l])); e2e[l].append(statistics.median(pe[l])); fast[l].append(min(per[l]))
for l in ms:
    print(f"{l:16s} decode ms {' '.join(f'{x:6.1f}' for x in ms[l])} | end to end ms {' '.join(f'{x:6.1f}' for x in e2e[l])} | runs that accepted a draft {sum(drafted[l])}/{len(drafted[l])}")
labels = list(ms)
for a, b in zip(labels[0::2], labels[1::2]):
    r = [x / y for x, y in zip(ms[a], ms[b])]; t = [x / y for x, y in zip(e2e[a], e2e[b])]; f = [x / y for x, y in zip(fast[a], fast[b])]
    print(f"{b} / {a}: decode {statistics.median(r):.3f} (per prompt {' '.join(f'{x:.3f}' for x in r)}), end to end {statistics.median(t):.3f}; "
          f"fastest runs: decode {statistics.median(f):.3f} (per prompt {' '.join(f'{x:.3f}' for x in f)})")
PY
