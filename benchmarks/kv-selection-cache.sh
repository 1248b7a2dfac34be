#!/usr/bin/env bash
# TokenSelect's selection cache (issue #14, docs/long-context.md "TokenSelect's selection cache (session 14)"): hit rate and
# accuracy. Accuracy/hit-rate figures, not timings, so machine load does not change them.
#   needle: pare-long single needle at 2,024 tokens, budget 512, 100 trials per depth, per threshold (~250 s each);
#   run:    pare-long, a 1,671-token prompt from the test corpus, 128 greedy tokens, plain decoding, per threshold (off too);
#           pare-ref the same with a 387-token prompt at budget 128. Hits / selections per layer are in the JSON.
# Usage: benchmarks/kv-selection-cache.sh [needle|run|all] (default all); output under docs/kv-selection-cache/.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
dotnet build -c Release src/Pare.Cli >/dev/null
pare=(dotnet src/Pare.Cli/bin/Release/net10.0/Pare.Cli.dll)
out=docs/kv-selection-cache
mkdir -p "$out"
if [[ $what == needle || $what == all ]]; then
  for th in 0.95 0.9 0.8 0.7; do
    "${pare[@]}" needle models/pare-long.gguf --task single --lengths 2024 --depths 0,0.5,1 --trials 100 --threads 1 \
      --kv-policy tokenselect --kv-budget 512 --kv-selection-cache $th --json > "$out/single-tokenselect-512-cache$th-trials100.json"
  done
fi
if [[ $what == run || $what == all ]]; then
  prompt=$(head -c 7500 .cache/data/corpus/test.txt)
  for th in off 0.95 0.9 0.8 0.7 0.5; do
    "${pare[@]}" run models/pare-long.gguf --prompt "$prompt" --max-tokens 128 --temp 0 --draft none --ctx 2048 --threads 1 \
      --kv-policy tokenselect --kv-budget 512 --kv-selection-cache $th --json > "$out/run-pare-long-512-cache$th.json"
  done
  prompt=$(head -c 1650 .cache/data/corpus/test.txt)   # pare-ref: context 512, a 387-token prompt, budget 128 (25%)
  for th in off 0.9 0.8 0.7; do
    "${pare[@]}" run models/pare-ref.gguf --prompt "$prompt" --max-tokens 128 --temp 0 --draft none --ctx 512 --threads 1 \
      --kv-policy tokenselect --kv-budget 128 --kv-selection-cache $th --json > "$out/run-pare-ref-128-cache$th.json"
  done
fi
