#!/usr/bin/env bash
# TokenSelect's attention over its selected rows (RowsAttention) at two builds, on a shared machine (docs/long-context.md,
# "Session 16: selected rows"): builds Pare.KernelBench at BASE (a commit; its Program.cs and RowsBench.cs replaced by
# this tree's) and at this tree, then runs `Pare.KernelBench rows` alternately, process by process, ROUNDS times: per
# decoded token (16 layers, 852M cache shape, 16k positions, budget 2k), full attention, RowsAttention over TokenSelect's
# selection (rows), RowsAttention over streaming's contiguous positions (contig) and streaming's own kernel (stream);
# with 1 thread also each part's thread CPU time (cpu), which descheduling on a loaded machine does not inflate.
# Usage: benchmarks/rows-attention-ab.sh BASE [OUT.txt]   (env: KV_HEADS=8 THREADS=2 ROUNDS=3 REPS=10 CONTEXTS=16384 BUDGET=2048)
set -euo pipefail
BASE=${1:?usage: benchmarks/rows-attention-ab.sh BASE [OUT.txt]}; OUT=${2:-/dev/null}
KV_HEADS=${KV_HEADS:-8}; THREADS=${THREADS:-2}; ROUNDS=${ROUNDS:-3}; REPS=${REPS:-10}; CONTEXTS=${CONTEXTS:-16384}; BUDGET=${BUDGET:-2048}
git cat-file -e "$BASE^{commit}" 2>/dev/null || { echo "rows-attention-ab: $BASE is not a commit" >&2; exit 1; }
DIR=.cache/rows-ab/$(git rev-parse --short "$BASE")
if [ ! -d "$DIR" ]; then mkdir -p "$DIR" && git archive "$BASE" | tar -x -C "$DIR"; fi
cp benchmarks/Pare.KernelBench/Program.cs benchmarks/Pare.KernelBench/RowsBench.cs "$DIR/benchmarks/Pare.KernelBench/"
dotnet build -c Release -v q "$DIR/benchmarks/Pare.KernelBench" >/dev/null
dotnet build -c Release -v q benchmarks/Pare.KernelBench >/dev/null
for r in $(seq 1 "$ROUNDS"); do
  for v in base new; do
    d=$DIR; [ $v = new ] && d=.
    dotnet "$d/benchmarks/Pare.KernelBench/bin/Release/net10.0/Pare.KernelBench.dll" rows --contexts "$CONTEXTS" --budget "$BUDGET" \
      --kv-heads "$KV_HEADS" --threads "$THREADS" --reps "$REPS" | python3 -c "
import sys, json
for l in sys.stdin:
    d = json.loads(l); f = d['full_ms_per_token']
    print('$v', 'thr', d['threads'], 'full %.1f rows %.2f contig %.2f stream %.2f ms; of full: rows %.3f stream %.3f; rows/stream %.2f' % (f,
          d['rows_ms_per_token'], d['rows_contiguous_ms_per_token'], d['streaming_ms_per_token'], d['rows_of_full'], d['streaming_of_full'],
          d['rows_ms_per_token'] / d['streaming_ms_per_token']), ('cpu ms [full, rows, contig, stream] %s rows/stream %.2f' % (d['cpu_ms_per_token'],
          d['cpu_ms_per_token'][1] / d['cpu_ms_per_token'][3]) if d.get('cpu_ms_per_token') else ''), 'load', d['load'], d['utc'])"
  done
done | tee "$OUT"
grep -m1 "model name" /proc/cpuinfo | sed 's/.*: /CPU: /'
