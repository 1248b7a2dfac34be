using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Pare.Kernels;
using Pare.LongContext.KvPolicies;
using Pare.Models;
using Pare.Models.Kv;

/// <summary>
/// TokenSelect's attention over its selected rows against streaming's over the same count of contiguous positions, beside
/// full attention, per decoded token (all layers), on the 852M model's cache shape (F32, random rows): the selection is
/// the default TokenSelect's own (init + top-k + local window, computed once per layer outside the timing), streaming's is
/// sinks + window. Each rep runs the parts one after the other (all layers each), 1 and N threads alternating: full (the cache's kernel), rows (RowsAttention
/// over TokenSelect's selection, the session's path), rows-contiguous (RowsAttention over streaming's positions) and
/// streaming (SelectedAttention.AttendHeads over the blocks, the session's path for streaming). Medians; one JSON line per
/// (context, thread count); with 1 thread also each part's thread CPU time (cpu_ms_per_token, in the order above), which a
/// shared machine's descheduling does not inflate. docs/long-context.md, "Session 16: selected rows".
/// </summary>
static class RowsBench
{
    public static int Run(string[] args)
    {
        int[] contexts = [16384];
        int layers = 16, heads = 32, kvHeads = 8, threads = 2, reps = 20, budget = 2048;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--contexts": contexts = [.. Next().Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))]; break;
                case "--layers": layers = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--heads": heads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--kv-heads": kvHeads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--threads": threads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--reps": reps = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--budget": budget = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine($"rows: unknown option {args[i]}"); return 1;
            }
        }
        if (contexts.Any(c => c <= budget + 1) || heads % kvHeads != 0 || reps < 1)
        {
            Console.Error.WriteLine("rows: every context must exceed the budget + 1, heads be a multiple of the K/V heads, reps >= 1");
            return 1;
        }
        const int hd = 64;
        foreach (int ctx in contexts)
        {
            int capacity = ctx + 1, kvd = kvHeads * hd;
            var cfg = new LlamaConfig
            {
                Dim = heads * hd, Layers = layers, Heads = heads, KvHeads = kvHeads, HeadDim = hd, RopeDim = hd, FfnDim = 4 * heads * hd,
                VocabSize = 32000, ContextLength = capacity, RopeBase = 10000f, RmsEps = 1e-5f,
            };
            var cache = new KvCache(cfg, capacity, KvValueType.F32);
            var rng = new Random(3);
            var k = new float[ctx * kvd];
            var v = new float[k.Length];
            var q = new float[heads * hd];
            for (int i = 0; i < q.Length; i++) q[i] = (float)(rng.NextDouble() * 2 - 1);
            var tokenSelect = new TokenSelectPolicy(new() { Budget = budget }, cfg);
            var streaming = KvPolicy.Create("streaming", budget, cfg, capacity);
            var selected = new int[layers][];
            var window = new int[layers][][];
            for (int l = 0; l < layers; l++)
            {
                for (int i = 0; i < k.Length; i++) { k[i] = (float)(rng.NextDouble() * 2 - 1); v[i] = (float)(rng.NextDouble() * 2 - 1); }
                cache.Write(l, k, v, ctx, 0);
                var (kc, vc) = cache.Read(l, capacity);
                var view = new KvView(kc.Span, vc.Span, capacity, heads, kvHeads, hd, threads);
                selected[l] = tokenSelect.Select(l, 0, q, ctx, ctx, view)![0];
                window[l] = streaming.Select(l, 0, q, ctx, ctx, view)!;
            }
            var o = new float[q.Length];
            var counts = new int[heads];
            int[] own = [ctx - 1];
            int[] threadCounts = threads > 1 ? [1, threads] : [1];
            string[] parts = ["full", "rows", "rows_contiguous", "streaming"];
            var times = threadCounts.Select(_ => parts.Select(_ => new List<double>()).ToArray()).ToArray();
            var cpu = parts.Select(_ => new List<double>()).ToArray();   // 1 thread: the thread's CPU time (deaf to descheduling on a shared machine)
            for (int r = 0; r < reps + 2; r++)
                for (int c = 0; c < threadCounts.Length; c++)
                {
                    int t = threadCounts[c];
                    var part = new double[parts.Length];
                    var partCpu = new double[parts.Length];
                    // Part by part, every layer each (as a decoded token): a part never finds the rows of the part before
                    // it in the L3 (a layer's are 8 MB, all layers' 128 MB).
                    for (int x = 0; x < parts.Length; x++)
                        for (int l = 0; l < layers; l++)
                        {
                            var (kc, vc) = cache.Read(l, capacity);
                            var rows = tokenSelect.KeyRows(l);
                            Array.Fill(counts, window[l][0].Length);
                            long t0 = Stopwatch.GetTimestamp();
                            double c0 = ThreadCpu.Seconds();
                            switch (x)
                            {
                                case 0: cache.Attend(l, q, 1, heads, ctx - 1, o, t); break;
                                case 1: RowsAttention.AttendShared(q, heads, kvHeads, hd, rows, kc.Span, capacity, vc.Span, selected[l], own, o, t); break;
                                case 2: RowsAttention.AttendShared(q, heads, kvHeads, hd, rows, kc.Span, capacity, vc.Span, window[l][0], own, o, t); break;
                                default: SelectedAttention.AttendHeads(q, heads, kvHeads, hd, kc.Span, capacity, vc.Span, window[l], counts, own, o, t); break;
                            }
                            partCpu[x] += ThreadCpu.Seconds() - c0;
                            part[x] += Stopwatch.GetTimestamp() - t0;
                        }
                    if (r < 2) continue;
                    for (int x = 0; x < parts.Length; x++) times[c][x].Add(part[x] * 1000.0 / Stopwatch.Frequency);
                    if (t == 1)
                        for (int x = 0; x < parts.Length; x++) cpu[x].Add(partCpu[x] * 1000.0);
                }
            static double Median(List<double> xs) { xs.Sort(); return xs[xs.Count / 2]; }
            for (int c = 0; c < threadCounts.Length; c++)
            {
                double full = Median(times[c][0]);
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    rows_attention = "tokenselect", context = ctx, budget, layers, heads, kv_heads = kvHeads, threads = threadCounts[c], reps,
                    full_ms_per_token = full, rows_ms_per_token = Median(times[c][1]), rows_contiguous_ms_per_token = Median(times[c][2]),
                    streaming_ms_per_token = Median(times[c][3]), rows_of_full = Median(times[c][1]) / full, streaming_of_full = Median(times[c][3]) / full,
                    cpu_ms_per_token = threadCounts[c] == 1 ? parts.Select((_, x) => Math.Round(Median(cpu[x]), 3)).ToArray() : null,
                    load = File.ReadAllText("/proc/loadavg").Split(' ')[0], utc = DateTime.UtcNow.ToString("HH:mm:ss", CultureInfo.InvariantCulture),
                }));
            }
        }
        return 0;
    }
}
