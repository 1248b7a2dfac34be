# Shared set-up of benchmarks/decode-acceptance.sh, quiet-acceptance.sh and rowgroup-acceptance.sh (sourced, not run): builds the CLI
# and the two benchmark programs, sets PARE / KB / SBS, and writes the report's header: acceptance_header TITLE;
# sparse_pairs makes the magnitude-pruned 852M files (dense and compact, once) and sets PAIRS for Pare.SideBySide --pairs.
# The sourcing script sets OUT first; this makes OUT and BENCH (.cache/bench) and defines step (progress with seconds).
BENCH=.cache/bench
mkdir -p "$OUT" "$BENCH"
START=$(date +%s)
step() { echo "[$(( $(date +%s) - START )) s] $*" >&2; }
step "building ..."
dotnet build -c Release src/Pare.Cli -v q -nologo >/dev/null
dotnet build -c Release benchmarks/Pare.KernelBench -v q -nologo >/dev/null
dotnet build -c Release benchmarks/Pare.SideBySide -v q -nologo >/dev/null
PARE=src/Pare.Cli/bin/Release/net10.0/Pare.Cli
KB="dotnet benchmarks/Pare.KernelBench/bin/Release/net10.0/Pare.KernelBench.dll"
SBS="dotnet benchmarks/Pare.SideBySide/bin/Release/net10.0/Pare.SideBySide.dll"

acceptance_header() {
  echo "# $1, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) logical CPUs; commit $(git rev-parse --short HEAD)."
  echo "Pare's kernel paths: $($PARE bench models/pare-ref.gguf --prefill 2 --decode 2 --runs 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["isa"])')."
  echo "Load average at start: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
}

sparse_pairs() {
  PAIRS=""
  local ty s dense compact
  for ty in F16 Q8_0; do
    for s in 0.5 0.7; do
      dense="$BENCH/mag-$ty-$s.gguf"; compact="$BENCH/mag-$ty-$s-bitmask.gguf"
      [ -f "$dense" ] || $PARE prune "$BENCH/random-852m-$ty.gguf" --method magnitude --sparsity "$s" --samples 0 -o "$dense" --json >/dev/null
      [ -f "$compact" ] || $PARE prune "$dense" --repack -o "$compact" --json >/dev/null
      PAIRS="$PAIRS${PAIRS:+,}$ty-$s-compact=$compact:$dense"
    done
  done
}
