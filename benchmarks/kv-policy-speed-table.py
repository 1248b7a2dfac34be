#!/usr/bin/env python3
"""Markdown tables of benchmarks/kv-policy-speed.sh's JSON lines (docs/long-context.md, "Speed of the policies"):
per K/V head count, one row per policy and budget, one column per context: attention + selection ms per decoded token
(speedup over full, and the median of the reps' paired full / policy where the line has it; selection ms), composed
decode tok/s when the line has it.
Usage: benchmarks/kv-policy-speed-table.py docs/kv-policy-speed.jsonl"""
import json, sys

rows = [r for r in (json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")) if "policy" in r]
for kv in sorted({r["kv_heads"] for r in rows}):
    sel = [r for r in rows if r["kv_heads"] == kv]
    contexts = sorted({r["context"] for r in sel})
    print(f"\n{kv} K/V heads: attention + selection ms per decoded token, all {sel[0]['layers']} layers (speedup over full; "
          "selection ms); composed decode tok/s\n")
    print("| policy | budget | " + " | ".join(f"{c // 1024}k" for c in contexts) + " |")
    print("|---|---|" + "---|" * len(contexts))
    keys = []
    for r in sel:
        k = (r["policy"], "context" if r["policy"] == "full" else r["budget"])
        if k not in keys: keys.append(k)
    keys.sort(key=lambda k: (k[0] != "full", 0 if k[1] == "context" else k[1]))
    for pol, budget in keys:
        cells = []
        for c in contexts:
            m = [r for r in sel if r["policy"] == pol and r["context"] == c and (pol == "full" or r["budget"] == budget)]
            if not m: cells.append("-"); continue
            r = m[0]
            tok = f", {r['decode_tok_s_composed']:.1f} tok/s" if isinstance(r.get("decode_tok_s_composed"), (int, float)) else ""   # "NaN": no --model
            paired = f", paired {r['speedup_paired_median']:.1f}x" if "speedup_paired_median" in r else ""
            if pol == "full": cells.append(f"{r['attention_ms_per_token']:.1f} ms{tok}")
            else: cells.append(f"{r['attention_ms_per_token']:.1f} ms ({r['speedup_vs_full']:.1f}x{paired}; sel "
                               f"{r['selection_ms_per_token']:.1f}){tok}")
        print(f"| {pol} | {budget} | " + " | ".join(cells) + " |")
    loads = [r["load"] for r in sel]
    bw = sorted({round(r["bandwidth_gb_s"], 1) for r in sel if "bandwidth_gb_s" in r})
    print(f"\nload averages during these lines: {loads[0]}-{loads[-1]}" + (f"; memory read bandwidth {bw[0]}-{bw[-1]} GB/s" if bw else ""))
