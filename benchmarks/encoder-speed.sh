#!/usr/bin/env bash
# Pare vs ONNX Runtime on all-MiniLM-L6-v2 (issue #16): sentences/s at batch 1 and 32, 128 tokens, 2 threads each,
# side by side in one process (the two engines take turns batch by batch). Quiet by default: one summary line per batch
# on stderr, the JSON in OUT. About 2.5 minutes with SECONDS_EACH=35 (each batch size runs 2 x SECONDS_EACH).
# Usage: benchmarks/encoder-speed.sh [OUT.json]   (env: THREADS=2 SEQ=128 SECONDS_EACH=35 GAP_MS=20)
# GAP_MS: untimed pause before each timed batch, so one engine's spinning pool threads (ONNX Runtime's intra-op pool
# spins after a run by default) do not hold a core while the other engine is timed; GAP_MS=0 for back-to-back turns.
# Needs the models (`pare data models`) and the corpus (`pare data fetch`).
set -euo pipefail
OUT=${1:-.cache/encoder-speed.json}
THREADS=${THREADS:-2}; SEQ=${SEQ:-128}; SECONDS_EACH=${SECONDS_EACH:-35}; GAP_MS=${GAP_MS:-20}
mkdir -p "$(dirname "$OUT")"
dotnet build -c Release -v q benchmarks/Pare.EncoderCheck >/dev/null
dotnet benchmarks/Pare.EncoderCheck/bin/Release/net10.0/Pare.EncoderCheck.dll speed --threads "$THREADS" --seq "$SEQ" \
  --seconds "$SECONDS_EACH" --gap-ms "$GAP_MS" --out "$OUT" >/dev/null
echo "written: $OUT (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
