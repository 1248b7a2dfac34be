#!/usr/bin/env bash
# Pare vs ONNX Runtime on all-MiniLM-L6-v2 (issue #16): sentences/s at batch 1 and 32, 128 tokens, 2 threads each,
# side by side in one process. Quiet by default: one summary line per batch on stderr, the JSON in OUT. About 3
# minutes with SECONDS_EACH=35 (each batch size runs at least 2 x SECONDS_EACH).
# Usage: benchmarks/encoder-speed.sh [OUT.json]
#   env: THREADS=2 SEQ=128 SECONDS_EACH=35 GAP_MS=20 TURN_MS=150 ORT_SPIN=1 SCALING_SECONDS=10
# How the turns go (EncoderCheck speed, `Duel`): the engines take turns, the order alternating round by round (the
# summary line gives the ratio for each order); a turn is TURN_MS of back-to-back batches (at least one), and before
# every turn the process sleeps GAP_MS and then waits until its other threads have been idle for two 5 ms windows
# (per-thread schedstat): ONNX Runtime's intra-op thread spins ~25 CPU-ms after a run by default (ORT_SPIN=1, its
# `session.intra_op.allow_spinning`), longer than the old fixed 20 ms pause, and would otherwise hold a core while
# Pare is timed. CPU-ms per sentence = the process's CPU over a turn and the idle wait after it (tail spin included).
# Last line: each engine at THREADS against itself on one thread at batch 1 (SCALING_SECONDS each, 0 skips): what the
# second thread buys each engine.
# Needs the models (`pare data models`) and the corpus (`pare data fetch`).
set -euo pipefail
OUT=${1:-.cache/encoder-speed.json}
THREADS=${THREADS:-2}; SEQ=${SEQ:-128}; SECONDS_EACH=${SECONDS_EACH:-35}; GAP_MS=${GAP_MS:-20}; TURN_MS=${TURN_MS:-150}; ORT_SPIN=${ORT_SPIN:-1}; SCALING_SECONDS=${SCALING_SECONDS:-10}
mkdir -p "$(dirname "$OUT")"
dotnet build -c Release -v q benchmarks/Pare.EncoderCheck >/dev/null
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
dotnet benchmarks/Pare.EncoderCheck/bin/Release/net10.0/Pare.EncoderCheck.dll speed --threads "$THREADS" --seq "$SEQ" \
  --seconds "$SECONDS_EACH" --gap-ms "$GAP_MS" --turn-ms "$TURN_MS" --ort-spin "$ORT_SPIN" \
  --scaling-seconds "$SCALING_SECONDS" --out "$OUT" >/dev/null
echo "written: $OUT (load average after $(cut -d' ' -f1-3 /proc/loadavg))" >&2
