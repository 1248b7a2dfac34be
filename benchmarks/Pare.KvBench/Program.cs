// KV cache types at long contexts, one measurement per process (peak RSS is per process):
//   dotnet run -c Release --project benchmarks/Pare.KvBench -- --kv-type f16 --context 16384 [--kv-heads 8] [--threads 2]
//       [--decode 32] [--dir .cache/bench]
// Writes (once) a random llama model (dim 512, 4 layers, 8 heads, FFN 1536, vocab 32000, F16 weights) with the given
// KV heads and context, fills the cache with a prompt of context - decode random tokens, then decodes greedily.
// Prints one JSON line: the cache's bytes, bytes per token, peak RSS, prefill seconds, decode tok/s.
//   ... -- --attention --contexts 4096,8192,16384 [--kv-heads 8] [--threads 2] [--reps 20]
// Attention only (no model, no prefill): for each type and context, a cache of the same shape (4 layers, 8 heads, head
// width 64) filled with random rows, then one decode step's attention over every layer, timed with the fused F16/Q8_0
// kernels and with the decode-to-F32 path they replace (best of --reps). Prints one JSON line per (type, context).
//   ... -- --policies streaming,quest,tokenselect --budgets 1024,2048 --contexts 4096,8192,16384 [--layers 16] [--heads 32]
//       [--kv-heads 8] [--threads 2] [--reps 10]     (tokenselect-f32: TokenSelect with F32 scores and no K rows, as the reference; -int8 / -int4: its sketch's bits)
// KV policies, attention only, on a cache of the 852M model's shape (16 layers, 32 heads, head width 64; F32 cache filled
// with random rows): per decoded token, every layer's selection (the policy's Select, after OnAppend of the last 64
// positions' random queries) plus attention over the selection, against the full cache's kernel, same process, best of
// --reps, each rep timing the full kernel right before the policy (speedup_paired_median: the median of the reps'
// full / policy, robust on a shared machine). Prints one JSON line per (policy, budget, context) with the selection and
// attention times apart. With
// --model FILE (e.g. .cache/bench/random-852m-Q8_0.gguf, the same shape) it also times that model's decode step at a
// short context (median of 32; its attention there is negligible) and reports decode tok/s at each context as
// 1 / (that step + the measured attention): composed, since a 16k-token prefill of the 852M model takes too long here.
//   ... -- --selection-parts --contexts 2048,16384 [--layers 16] [--heads 32] [--kv-heads 8] [--reps 20] [--sketch-bits 8|4]
// TokenSelect's selection by piece, on 1 thread and on --threads alternating rep by rep in one process: every layer's
// sketch scores with the soft vote's softmax (KeySketch.Logits), the vote sum (SoftVotes.Compute), the same two fused
// (KeySketch.Votes, the policy's path) and the top-k (TopK.Indices, budget = context / 8), beside the full cache's
// attention; medians per token. One JSON line per (context, threads).
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Pare.Kernels;
using Pare.Models;
using Pare.Models.Kv;
using Pare.Tensors;

string kvType = "f32", dir = ".cache/bench";
int context = 16384, kvHeads = 8, threads = Environment.ProcessorCount, decode = 32, reps = 20;
bool attentionOnly = false, selectionParts = false;
string[] policies = [];
string? modelPath = null;
int[] budgets = [1024, 2048];
int layers = 16, heads = 32, sketchBits = 8;
int[] contexts = [4096, 8192, 16384];
for (int i = 0; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--kv-type": kvType = Next(); break;
        case "--context": context = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--kv-heads": kvHeads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--threads": threads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--decode": decode = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--dir": dir = Next(); break;
        case "--attention": attentionOnly = true; break;
        case "--selection-parts": selectionParts = true; break;
        case "--reps": reps = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--model": modelPath = Next(); break;
        case "--policies": policies = Next().Split(','); break;
        case "--budgets": budgets = [.. Next().Split(',').Select(x => int.Parse(x, CultureInfo.InvariantCulture))]; break;
        case "--layers": layers = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--heads": heads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--sketch-bits": sketchBits = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--contexts": contexts = [.. Next().Split(',').Select(x => int.Parse(x, CultureInfo.InvariantCulture))]; break;
        default: Console.Error.WriteLine($"kv-bench: error: unknown argument {args[i]}"); return 1;
    }
}
if (attentionOnly) return AttentionOnly(contexts, kvHeads, threads, reps);
if (selectionParts) return SelectionParts(contexts, layers, heads, kvHeads, threads, reps, sketchBits);
if (policies.Length > 0) return PolicyAttention(policies, budgets, contexts, layers, heads, kvHeads, threads, reps, modelPath);
var type = kvType.ToLowerInvariant() switch
{
    "f32" => KvValueType.F32, "f16" => KvValueType.F16, "q8_0" => KvValueType.Q8_0,
    _ => throw new ArgumentException($"--kv-type must be f32, f16 or q8_0 (got {kvType})"),
};
var cfg = new LlamaConfig
{
    Dim = 512, Layers = 4, Heads = 8, KvHeads = kvHeads, HeadDim = 64, RopeDim = 64, FfnDim = 1536, VocabSize = 32000,
    ContextLength = context, RopeBase = 10000f, RmsEps = 1e-5f,
};
Directory.CreateDirectory(dir);
string path = Path.Combine(dir, $"random-kv{kvHeads}-ctx{context}-F16.gguf");
if (!File.Exists(path)) SyntheticModel.Write(path, cfg, GgmlType.F16, SyntheticModel.ByteLevelVocab(cfg.VocabSize), seed: 16);

using var model = LlamaModel.Load(path);
var session = model.CreateSession(new SessionOptions { ContextLength = context, Threads = threads, KvType = type });
var rng = new Random(1);
int prompt = context - decode;
var ids = Enumerable.Range(0, prompt).Select(_ => rng.Next(cfg.VocabSize)).ToArray();
var sw = Stopwatch.StartNew();
float[] logits = [];
for (int at = 0; at < prompt; at += 512) logits = session.Forward(ids.AsSpan(at, Math.Min(512, prompt - at)));
double prefill = sw.Elapsed.TotalSeconds;
sw.Restart();
for (int i = 0; i < decode; i++) logits = session.Forward([Array.IndexOf(logits, logits.Max())]);
double decodeTokS = decode / sw.Elapsed.TotalSeconds;
double rss = 0;
foreach (var line in File.ReadLines("/proc/self/status"))
    if (line.StartsWith("VmHWM:", StringComparison.Ordinal)) rss = double.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024.0;
Console.WriteLine(JsonSerializer.Serialize(new
{
    kv_type = kvType, context, kv_heads = kvHeads, threads,
    cache_mib = session.Cache.Bytes / 1048576.0, bytes_per_token = session.Cache.BytesPerToken,
    peak_rss_mib = rss, weights_mib = new FileInfo(path).Length / 1048576.0,
    prefill_s = prefill, decode_tok_s = decodeTokS, load = File.ReadAllText("/proc/loadavg").Split(' ')[0],
}));
return 0;

static int AttentionOnly(int[] contexts, int kvHeads, int threads, int reps)
{
    foreach (int ctx in contexts)
        foreach (var type in new[] { KvValueType.F32, KvValueType.F16, KvValueType.Q8_0 })
        {
            var cfg = new LlamaConfig
            {
                Dim = 512, Layers = 4, Heads = 8, KvHeads = kvHeads, HeadDim = 64, RopeDim = 64, FfnDim = 1536, VocabSize = 32000,
                ContextLength = ctx, RopeBase = 10000f, RmsEps = 1e-5f,
            };
            var cache = new KvCache(cfg, ctx, type);
            var rng = new Random(3);
            int kvd = kvHeads * 64, chunk = 1024;
            var k = new float[chunk * kvd];
            var v = new float[chunk * kvd];
            for (int l = 0; l < cfg.Layers; l++)
                for (int at = 0; at < ctx; at += chunk)
                {
                    for (int i = 0; i < k.Length; i++) { k[i] = (float)(rng.NextDouble() * 2 - 1); v[i] = (float)(rng.NextDouble() * 2 - 1); }
                    cache.Write(l, k, v, Math.Min(chunk, ctx - at), at);
                }
            var q = new float[cfg.Heads * 64];
            for (int i = 0; i < q.Length; i++) q[i] = (float)(rng.NextDouble() * 2 - 1);
            var o = new float[q.Length];
            double Time(bool fused)
            {
                double best = double.MaxValue;
                for (int r = 0; r < reps + 2; r++)
                {
                    var sw = Stopwatch.StartNew();
                    for (int l = 0; l < cfg.Layers; l++) cache.Attend(l, q, 1, cfg.Heads, ctx - 1, o, threads, fused: fused);
                    if (r >= 2) best = Math.Min(best, sw.Elapsed.TotalMilliseconds);
                }
                return best;
            }
            double cacheMib = cache.Bytes / 1048576.0; // before the decode-to-F32 timing allocates its one-layer scratch
            double viaF32 = type == KvValueType.F32 ? double.NaN : Time(false), fusedMs = Time(true);
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                kv_type = type.ToString().ToLowerInvariant(), context = ctx, kv_heads = kvHeads, threads, fused = cache.Fused,
                cache_mib = cacheMib, attention_ms_per_token = fusedMs, decode_to_f32_ms_per_token = viaF32,
                load = File.ReadAllText("/proc/loadavg").Split(' ')[0],
            }, new JsonSerializerOptions { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals }));
        }
    return 0;
}

// The 852M model's attention shape (by default) at a context: the policies' caches.
static LlamaConfig PolicyShape(int context, int layers, int heads, int kvHeads, int hd) => new()
{
    Dim = heads * hd, Layers = layers, Heads = heads, KvHeads = kvHeads, HeadDim = hd, RopeDim = hd, FfnDim = 4 * heads * hd,
    VocabSize = 32000, ContextLength = context, RopeBase = 10000f, RmsEps = 1e-5f,
};

static int SelectionParts(int[] contexts, int layers, int heads, int kvHeads, int threads, int reps, int bits)
{
    const int hd = 64;
    foreach (int ctx in contexts)
    {
        var cache = new KvCache(PolicyShape(ctx, layers, heads, kvHeads, hd), ctx, KvValueType.F32);
        var rng = new Random(3);
        var sketches = new sbyte[layers][];
        var scales = new float[layers][];
        var k = new float[ctx * kvHeads * hd];
        var v = new float[k.Length];
        for (int l = 0; l < layers; l++)
        {
            for (int i = 0; i < k.Length; i++) { k[i] = (float)(rng.NextDouble() * 2 - 1); v[i] = (float)(rng.NextDouble() * 2 - 1); }
            cache.Write(l, k, v, ctx, 0);
            var (kc, _) = cache.Read(l, ctx);
            sketches[l] = new sbyte[KeySketch.SketchBytes(ctx, kvHeads, hd, bits)];
            scales[l] = new float[KeySketch.ScaleCount(ctx, kvHeads)];
            KeySketch.Quantize(kc.Span, ctx, kvHeads, hd, 0, ctx, sketches[l], scales[l], bits);
        }
        var q = new float[heads * hd];
        for (int i = 0; i < q.Length; i++) q[i] = (float)(rng.NextDouble() * 2 - 1);
        var o = new float[q.Length];
        var logits = new float[heads * ctx];
        var votes = new float[ctx];
        var rowScales = new float[heads];
        var top = new int[ctx / 8];
        int[] counts = threads > 1 ? [1, threads] : [1];
        // [thread count][part: scores, votes, top-k, full attention, fused scores and votes] per rep
        var fusedVotes = new float[ctx];
        var times = counts.Select(_ => Enumerable.Range(0, 5).Select(_ => new List<double>()).ToArray()).ToArray();
        for (int r = 0; r < reps + 2; r++)
            for (int c = 0; c < counts.Length; c++)
            {
                int t = counts[c];
                var part = new double[5];
                for (int l = 0; l < layers; l++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    KeySketch.Logits(q, heads, kvHeads, hd, sketches[l], scales[l], ctx, 0, ctx, logits, t, softmax: true, bits, rowScales);
                    long t1 = Stopwatch.GetTimestamp();
                    SoftVotes.Compute(logits, heads, ctx, votes, t, normalized: true, rowScales);
                    long t2 = Stopwatch.GetTimestamp();
                    TopK.Indices(votes, top.Length, top);
                    long t3 = Stopwatch.GetTimestamp();
                    cache.Attend(l, q, 1, heads, ctx - 1, o, t);
                    long t4 = Stopwatch.GetTimestamp();
                    KeySketch.Votes(q, heads, kvHeads, hd, sketches[l], scales[l], ctx, 0, ctx, logits, fusedVotes, t, bits);
                    long t5 = Stopwatch.GetTimestamp();
                    part[0] += t1 - t0; part[1] += t2 - t1; part[2] += t3 - t2; part[3] += t4 - t3; part[4] += t5 - t4;
                }
                if (r < 2) continue;
                for (int x = 0; x < 5; x++) times[c][x].Add(part[x] * 1000.0 / Stopwatch.Frequency);
            }
        // The last layer's selection from the fused votes against the pieces' (they differ only by the exponentials' rounding).
        var fusedTop = new int[top.Length];
        TopK.Indices(fusedVotes, fusedTop.Length, fusedTop);
        double overlap = top.Intersect(fusedTop).Count() / (double)top.Length;
        static double Median(List<double> xs) { xs.Sort(); return xs[xs.Count / 2]; }
        for (int c = 0; c < counts.Length; c++)
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                selection_parts = bits == 8 ? "tokenselect-int8" : "tokenselect-int4", context = ctx, layers, heads, kv_heads = kvHeads, threads = counts[c], budget = top.Length,
                scores_softmax_ms_per_token = Median(times[c][0]), votes_ms_per_token = Median(times[c][1]), topk_ms_per_token = Median(times[c][2]),
                fused_scores_votes_ms_per_token = Median(times[c][4]), fused_selection_overlap = overlap,
                full_attention_ms_per_token = Median(times[c][3]), load = File.ReadAllText("/proc/loadavg").Split(' ')[0],
            }));
    }
    return 0;
}

static int PolicyAttention(string[] policies, int[] budgets, int[] contexts, int layers, int heads, int kvHeads, int threads, int reps, string? modelPath)
{
    const int hd = 64;
    double stepMs = double.NaN;
    if (modelPath != null)
    {
        using var model = LlamaModel.Load(modelPath);
        if (model.Config.Layers != layers || model.Config.Heads != heads || model.Config.HeadDim != hd)
            throw new ArgumentException($"{modelPath}: {model.Config.Layers} layers, {model.Config.Heads} heads, head width {model.Config.HeadDim}; --layers/--heads must match");
        var session = model.CreateSession(new SessionOptions { ContextLength = 256, Threads = threads });
        var logits = session.Forward([1, 2, 3, 4, 5, 6, 7, 8]);
        var times = new List<double>();
        for (int i = 0; i < 34; i++)
        {
            var sw = Stopwatch.StartNew();
            logits = session.Forward([Array.IndexOf(logits, logits.Max())]);
            if (i >= 2) times.Add(sw.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        stepMs = times[times.Count / 2];
    }
    // The memory read bandwidth in the same run (the roofline of attention at long contexts), on every line.
    double bandwidth = MemoryBandwidth.Measure(threads);
    foreach (int ctx in contexts)
    {
        var cfg = PolicyShape(ctx + 1, layers, heads, kvHeads, hd);
        int capacity = ctx + 1, kvd = kvHeads * hd, qd = heads * hd, chunk = 1024;
        var cache = new KvCache(cfg, capacity, KvValueType.F32);
        var rng = new Random(3);
        var k = new float[chunk * kvd];
        var v = new float[chunk * kvd];
        for (int l = 0; l < layers; l++)
            for (int at = 0; at < ctx; at += chunk)
            {
                for (int i = 0; i < k.Length; i++) { k[i] = (float)(rng.NextDouble() * 2 - 1); v[i] = (float)(rng.NextDouble() * 2 - 1); }
                cache.Write(l, k, v, Math.Min(chunk, ctx - at), at);
            }
        var q = new float[qd];
        for (int i = 0; i < q.Length; i++) q[i] = (float)(rng.NextDouble() * 2 - 1);
        var recent = new float[64 * qd];
        for (int i = 0; i < recent.Length; i++) recent[i] = (float)(rng.NextDouble() * 2 - 1);
        var o = new float[qd];
        double full = double.MaxValue;
        for (int r = 0; r < reps + 2; r++)
        {
            var sw = Stopwatch.StartNew();
            for (int l = 0; l < layers; l++) cache.Attend(l, q, 1, heads, ctx - 1, o, threads);
            if (r >= 2) full = Math.Min(full, sw.Elapsed.TotalMilliseconds);
        }
        Emit("full", ctx, ctx, 0, full, full);
        foreach (int budget in budgets)
            foreach (string name in policies)
            {
                // tokenselect-f32: the reference's selection (F32 scores over the cache, attention over its blocks);
                // tokenselect-int4 / -int8: the default path with a 4-bit sketch (the default since session 16) / an 8-bit one.
                var policy = name switch
                {
                    "tokenselect-f32" => new Pare.LongContext.KvPolicies.TokenSelectPolicy(new() { Budget = budget, Int8Scores = false, KeyRows = false }, cfg),
                    "tokenselect-int4" => new Pare.LongContext.KvPolicies.TokenSelectPolicy(new() { Budget = budget, SketchBits = 4 }, cfg),
                    "tokenselect-int8" => new Pare.LongContext.KvPolicies.TokenSelectPolicy(new() { Budget = budget, SketchBits = 8 }, cfg),
                    _ => Pare.LongContext.KvPolicies.KvPolicy.Create(name, budget, cfg, capacity),
                };
                policy.OnRewind(0);
                for (int l = 0; l < layers; l++)
                {
                    var (kc, vc) = cache.Read(l, ctx);
                    policy.OnAppend(l, recent, 64, ctx - 64, new KvView(kc.Span, vc.Span, capacity, heads, kvHeads, hd, threads));
                }
                double best = double.MaxValue, bestSelect = 0;
                var prefix = new int[heads][];
                var counts = new int[heads];
                // Each rep times the full kernel, then the policy, so that the pair sees the same machine (it is shared):
                // speedup_paired_median is the median of the reps' full / policy.
                var paired = new List<double>();
                for (int r = 0; r < reps + 2; r++)
                {
                    var fw = Stopwatch.StartNew();
                    for (int l = 0; l < layers; l++) cache.Attend(l, q, 1, heads, ctx - 1, o, threads);
                    double fullMs = fw.Elapsed.TotalMilliseconds;
                    if (r >= 2) full = Math.Min(full, fullMs);
                    double select = 0;
                    var sw = Stopwatch.StartNew();
                    for (int l = 0; l < layers; l++)
                    {
                        var (kc, vc) = cache.Read(l, ctx + 1);
                        var view = new KvView(kc.Span, vc.Span, capacity, heads, kvHeads, hd, threads);
                        long t0 = Stopwatch.GetTimestamp();
                        var sel = policy.Select(l, 0, q, ctx, ctx, view);
                        select += Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                        if (sel == null) { cache.Attend(l, q, 1, heads, ctx - 1, o, threads); continue; }   // as the session: the dense kernel
                        if (policy.KeyRows(l) is { IsEmpty: false } rows)   // the session's path for a shared selection with K rows
                        {
                            RowsAttention.AttendShared(q, heads, kvHeads, hd, rows, kc.Span, capacity, vc.Span, sel[0], [ctx - 1], o, threads);
                            continue;
                        }
                        for (int h = 0; h < heads; h++) { prefix[h] = sel[h]; counts[h] = prefix[h].Length; }
                        SelectedAttention.AttendHeads(q, heads, kvHeads, hd, kc.Span, capacity, vc.Span, prefix, counts, [ctx - 1], o, threads);
                    }
                    double ms = sw.Elapsed.TotalMilliseconds;
                    if (r >= 2) paired.Add(fullMs / ms);
                    if (r >= 2 && ms < best) { best = ms; bestSelect = select; }
                }
                paired.Sort();
                Emit(name, ctx, budget, bestSelect, best, full, policy is Pare.LongContext.KvPolicies.TokenSelectPolicy ts ? ts.CopyBytes / 1048576.0 : 0, paired[paired.Count / 2]);
            }
    }
    return 0;

    void Emit(string policy, int ctx, int budget, double selectMs, double totalMs, double fullMs, double copiesMib = 0, double pairedSpeedup = 1) =>
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            policy, context = ctx, budget, layers, heads, kv_heads = kvHeads, threads, selection_ms_per_token = selectMs,
            attention_ms_per_token = totalMs, speedup_vs_full = fullMs / totalMs, speedup_paired_median = pairedSpeedup, policy_copies_mib = copiesMib,
            model_step_ms = stepMs, decode_tok_s_composed = 1000 / (stepMs + totalMs), bandwidth_gb_s = bandwidth, load = File.ReadAllText("/proc/loadavg").Split(' ')[0],
        }, new JsonSerializerOptions { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals }));
}
