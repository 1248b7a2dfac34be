#!/usr/bin/env bash
# Weight-pruning acceptance table of issue #16: all-MiniLM-L6-v2 pruned by magnitude, Wanda, SparseGPT and oBERT at
# 50/70/90% and 2:4; retrieval recall@1/10, MRR on the test split and cosine to the dense embeddings (docs/encoders.md).
# Usage: benchmarks/encoder-prune-table.sh [OUT_DIR]
#   env: QUERIES=200 CALIB=128 (Wanda, SparseGPT) OBERT_CALIB=512 (oBERT: one gradient per sentence)
#        FISHER_BLOCK=50 FISHER_DAMP=1e-5 METHODS=magnitude,wanda,sparsegpt,obert PATTERNS=0.5,0.7,0.9,2:4
# Writes OUT_DIR/prune-minilm.json, OUT_DIR/prune-minilm.png and OUT_DIR/prune-minilm.md (the markdown table).
# Needs the models (`pare data models`) and the corpus (`pare data fetch`). Runs niced; ~40 min on 2 shared cores.
set -euo pipefail
OUT=${1:-docs/encoders}
QUERIES=${QUERIES:-200}; CALIB=${CALIB:-128}; OBERT_CALIB=${OBERT_CALIB:-512}
FISHER_BLOCK=${FISHER_BLOCK:-50}; FISHER_DAMP=${FISHER_DAMP:-1e-5}
METHODS=${METHODS:-magnitude,wanda,sparsegpt,obert}; PATTERNS=${PATTERNS:-0.5,0.7,0.9,2:4}
mkdir -p "$OUT"
nice -n 10 dotnet build -c Release -v q benchmarks/Pare.EncoderCheck >/dev/null
nice -n 10 dotnet build -c Release -v q benchmarks/Pare.Plots >/dev/null
nice -n 10 dotnet benchmarks/Pare.EncoderCheck/bin/Release/net10.0/Pare.EncoderCheck.dll prune --queries "$QUERIES" \
  --calib "$CALIB" --obert-calib "$OBERT_CALIB" --fisher-block "$FISHER_BLOCK" --fisher-damp "$FISHER_DAMP" \
  --methods "$METHODS" --patterns "$PATTERNS" --out "$OUT/prune-minilm.json" >/dev/null
nice -n 10 dotnet benchmarks/Pare.Plots/bin/Release/net10.0/Pare.Plots.dll encoder-prune "$OUT/prune-minilm.json" "$OUT/prune-minilm.png" >/dev/null
python3 - "$OUT/prune-minilm.json" > "$OUT/prune-minilm.md" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
names = {"dense": "dense", "magnitude": "magnitude", "wanda": "Wanda", "sparsegpt": "SparseGPT", "obert": "oBERT"}
print("| method | pattern | sparsity | calib. sentences | recall@1 | recall@10 | MRR | cosine to dense | prune time (s) |")
print("|---|---|---|---|---|---|---|---|---|")
for r in d["rows"]:
    pat = r["pattern"] if ":" in r["pattern"] or r["pattern"] == "-" else "%d%%" % round(100 * float(r["pattern"]))
    print("| %s | %s | %.3f | %s | %.3f | %.3f | %.3f | %.3f | %s |" % (names.get(r["method"], r["method"]), pat, r["sparsity"],
          r.get("calibration_sentences", "-") if r["method"] not in ("dense", "magnitude") else "-",
          r["recall_at_1"], r["recall_at_10"], r["mrr"], r["cosine_to_dense"], "-" if r["method"] == "dense" else "%.1f" % r["prune_seconds"]))
PY
cat "$OUT/prune-minilm.md"
