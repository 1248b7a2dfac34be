// Pruning benchmarks. Each prints its settings with its figures; none is part of the test suite.
//
//   dotnet run -c Release --project benchmarks/Pare.PruneBench -- sweep MODEL [--samples 128] [--test F] [--train F] [--docs DIR] [--threads N]
//       test perplexity of every method at 10-90% unstructured and 2:4 / 4:8, as a ratio to dense, beside the published
//       ratios, with pruning times; and the per-layer reconstruction error at 50%. Writes DIR/pruning-results.md and
//       DIR/pruning-ppl.png (DIR = docs), partial results to DIR/pruning-results.partial.tsv as it goes. Exit 1 when the
//       methods do not order as the papers say (SparseGPT and Wanda below magnitude at 50%, SparseGPT lowest error).
//   dotnet run -c Release --project benchmarks/Pare.PruneBench -- sparse-speed DIR [--rounds 5] [--types F16,Q8_0]
//       [--sparsities 0.5,0.7] [--prompt 64] [--decode 32] [--out FILE]
//       decode/prefill speed of magnitude-pruned copies (DIR/mag-TYPE-S.gguf and DIR/mag-TYPE-S-bitmask.gguf, see
//       docs/pruning.md): Pare dense, Pare compact, llama.cpp dense, interleaved in rounds, medians; a markdown table.
//   dotnet run -c Release --project benchmarks/Pare.PruneBench -- sparse-micro [--copies 40]
//       an ffn-sized matrix (5632 x 2048), decode products only, dense kernel vs compact kernel, interleaved, medians;
//       COPIES copies of each are multiplied in turn so products read from memory as in a model, not from L3.
//   dotnet run -c Release --project benchmarks/Pare.PruneBench -- structured MODEL [--samples 128] [--seqlen 128] [--ratios 0.1,0.2,0.3,0.5] [--methods flap,...,cfsp] [--test F] [--docs DIR]
//       test perplexity of flap, flap-uniform, wanda-sp, magnitude-sp and cfsp at each ratio of block parameters removed, as a
//       ratio to dense, with kept widths and sizes: DIR/structured-pruning-results.md and DIR/structured-pruning-ppl.png.
//   dotnet run -c Release --project benchmarks/Pare.PruneBench -- structured-table MODEL [--tsv ROWS.tsv] [--md TABLE.md] [--ratios ..]
//       [--methods ..] [--recover-steps N] [--recover-lr 5e-4] [--recover-batch 4] [--recover-seqlen 512] [--test F] [--render]
//       the acceptance table of issue 13 (every method, without and with recovery fine-tuning), resumable: rows appended to
//       ROWS.tsv, rows already there skipped; TABLE.md rendered from every row (StructuredTable.cs).
//   dotnet run -c Release --project benchmarks/Pare.PruneBench -- prune-timing [--samples 128]
//       pruning time of each method on a random model shaped like pare-ref (dim 256, 8 layers, 8/4 heads, ffn 704,
//       vocab 8192, context 512, tied head) with the papers' calibration (SAMPLES windows of 512 tokens), 2 threads.
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using LLama;
using LLama.Common;
using LLama.Native;
using Pare;
using Pare.Evaluation;
using Pare.Generation;
using Pare.Kernels;
using Pare.Kernels.Sparse;
using Pare.Models;
using Pare.Pruning;
using Pare.Tensors;

var inv = CultureInfo.InvariantCulture;
try
{
    return args switch
    {
        ["sweep", var model, .. var rest] => Sweep(model, new Options(rest)),
        ["sparse-speed", var dir, .. var rest] => SparseSpeed(dir, new Options(rest)),
        ["sparse-micro", .. var rest] => SparseMicro(new Options(rest)),
        ["prune-timing", .. var rest] => PruneTiming(new Options(rest)),
        ["structured", var model, .. var rest] => new Options(rest) is var so ? StructuredSweep.Run(model, so.Get("--test", ".cache/data/corpus/test.txt"),
            so.Get("--train", ".cache/data/corpus/train.txt"), so.Get("--docs", "docs"), so.Int("--samples", 128), so.Int("--seqlen", 128),
            so.Int("--threads", Environment.ProcessorCount), so.Get("--ratios", "0.1,0.2,0.3,0.5"), so.Get("--methods", "flap,flap-uniform,wanda-sp,magnitude-sp,cfsp")) : 2,
        ["structured-plot", var tsv, var png] => StructuredSweep.Plot(tsv, png),
        ["structured-table", var model, .. var rest] => StructuredTable.Run(model, new Options(rest)),
        _ => Usage(),
    };
}
catch (PareException e)
{
    Console.Error.WriteLine($"Pare.PruneBench: error: {e.Message}");
    return 1;
}

static int Usage()
{
    Console.Error.WriteLine("usage: Pare.PruneBench sweep MODEL [--samples N] [--test F] [--train F] [--docs DIR] [--threads N]\n" +
        "       Pare.PruneBench sparse-speed DIR [--rounds N] [--types F16,Q8_0] [--sparsities 0.5,0.7] [--prompt N] [--decode N] [--out FILE]\n" +
        "       Pare.PruneBench sparse-micro [--copies N]\n" +
        "       Pare.PruneBench prune-timing [--samples N]\n" +
        "       Pare.PruneBench structured MODEL [--samples N] [--seqlen N] [--ratios 0.1,0.2,0.3,0.5] [--docs DIR]\n" +
        "       Pare.PruneBench structured-table MODEL [--tsv ROWS.tsv] [--md TABLE.md] [--ratios ..] [--methods ..] [--recover-steps N] [--test F] [--render]\n" +
        "       Pare.PruneBench structured-plot ROWS.tsv OUT.png   (rows: method, block params removed 0-1, ppl ratio to dense)");
    return 2;
}

int Sweep(string model, Options o)
{
    string[] methods = ["magnitude", "wanda", "sparsegpt"];
    string[] settings = ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "2:4", "4:8"];
    // Published ratios to dense (/work/shared/reference/anchors.md): (OPT-125M, Llama-2-7B).
    var published = new Dictionary<(string, string), (string Opt, string Llama)>
    {
        [("magnitude", "0.5")] = ("6.99", "2.91"), [("sparsegpt", "0.5")] = ("1.33", "1.27"), [("wanda", "0.5")] = ("1.42", "1.25"),
        [("magnitude", "2:4")] = ("12.3", "10.7"), [("sparsegpt", "2:4")] = ("2.19", "1.99"), [("wanda", "2:4")] = ("2.95", "2.15"),
    };
    string test = o.Get("--test", ".cache/data/corpus/test.txt"), train = o.Get("--train", ".cache/data/corpus/train.txt"), docs = o.Get("--docs", "docs");
    int samples = o.Int("--samples", 128), threads = o.Int("--threads", Environment.ProcessorCount);
    const int seed = 0;
    foreach (var f in new[] { model, test, train }) if (!File.Exists(f)) throw new PareException($"{f} not found");
    string tmp = Directory.CreateTempSubdirectory("pare-sweep-").FullName;
    try
    {
        Directory.CreateDirectory(docs);
        string partial = Path.Combine(docs, "pruning-results.partial.tsv");
        File.Delete(partial);
        // The protocol of `pare ppl`: the model's own tokenizer, windows of the context length over the whole split.
        double Ppl(string path)
        {
            using var m = LlamaModel.Load(path);
            var ids = m.Tokenizer!.Encode(File.ReadAllText(test), addSpecial: true);
            return Perplexity.Evaluate(m, ids, new PerplexityOptions { Threads = threads }).Ppl;
        }
        double dense = Ppl(model);
        var ppl = new Dictionary<(string, string), double>();
        var secs = new Dictionary<(string, string), double>();
        int seqlen = 0;
        foreach (var m in methods)
            foreach (var s in settings)
            {
                string outPath = Path.Combine(tmp, "p.gguf");
                var method = Enum.Parse<PruneMethod>(m, ignoreCase: true);
                // Magnitude needs no calibration (its windows would only feed the error report, made separately below).
                var options = new PruneOptions
                {
                    Method = method, Samples = method == PruneMethod.Magnitude ? 0 : samples, Seed = seed, Threads = threads,
                    Pattern = s.Contains(':') ? SparsityPattern.Parse(s, 0) : SparsityPattern.Unstructured(double.Parse(s, inv)),
                };
                var pr = Pruner.Run(model, outPath, options, new CalibrationSource.TextFile(train));
                seqlen = Math.Max(seqlen, pr.SeqLen);
                secs[(m, s)] = pr.Seconds;
                ppl[(m, s)] = Ppl(outPath);
                Console.WriteLine($"{m} {s}: ppl {ppl[(m, s)]:F3} (x{ppl[(m, s)] / dense:F3}), pruned in {secs[(m, s)]:F1} s");
                File.AppendAllText(partial, string.Create(inv, $"{m}\t{s}\t{ppl[(m, s)]:R}\t{ppl[(m, s)] / dense:0.000}\t{secs[(m, s)]:0.0}\tdense {dense:R}\n"));
            }

        // Per-layer reconstruction error at 50% on the same calibration windows.
        var errors = new Dictionary<string, IReadOnlyList<LayerReport>>();
        foreach (var m in methods)
        {
            var eo = new PruneOptions { Method = Enum.Parse<PruneMethod>(m, ignoreCase: true), Pattern = SparsityPattern.Unstructured(0.5), Samples = samples, Seed = seed, Threads = threads };
            errors[m] = Pruner.Run(model, Path.Combine(tmp, "e.gguf"), eo, new CalibrationSource.TextFile(train)).Layers;
        }
        var order = errors["magnitude"].Select(l => (l.Tensor,
            Mag: l.RelativeError!.Value,
            Wanda: errors["wanda"].Single(x => x.Tensor == l.Tensor).RelativeError!.Value,
            Gpt: errors["sparsegpt"].Single(x => x.Tensor == l.Tensor).RelativeError!.Value)).ToList();

        string F(double v) => v.ToString("0.000", inv);
        var md = new StringBuilder();
        md.AppendLine("# Pruning results on pare-ref (generated by benchmarks/Pare.PruneBench: `sweep`)");
        md.AppendLine();
        md.AppendLine($"Model `{Path.GetFileName(model)}`; test perplexity over the whole test split (`{Path.GetFileName(test)}`), windows of the context length, as `pare ppl`; " +
            $"dense ppl **{F(dense)}**. Calibration: {samples} windows of {seqlen} tokens drawn with seed {seed} from the training split (`{Path.GetFileName(train)}`, tokenized once); " +
            "sequential block-by-block; SparseGPT blocks of 128 columns, 1% damping; magnitude without calibration (it needs none). Embeddings and head not pruned. " +
            $"{threads} threads; command: `dotnet run -c Release --project benchmarks/Pare.PruneBench -- sweep {model} --samples {samples} --test {test} --train {train}`.");
        md.AppendLine();
        md.AppendLine("| method | setting | ppl | ratio to dense | published OPT-125M | published Llama-2-7B | pruning time (s) |");
        md.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var m in methods)
            foreach (var s in settings)
            {
                var pub = published.GetValueOrDefault((m, s), (Opt: "-", Llama: "-"));
                md.AppendLine(string.Create(inv, $"| {m} | {(s.Contains(':') ? s : double.Parse(s, inv).ToString("P0", inv))} | {F(ppl[(m, s)])} | {F(ppl[(m, s)] / dense)} | {pub.Opt} | {pub.Llama} | {secs[(m, s)]:F1} |"));
            }
        md.AppendLine();
        md.AppendLine("Mean pruning time per method: " + string.Join(", ", methods.Select(m => string.Create(inv, $"{m} {settings.Average(s => secs[(m, s)]):F1} s"))) + ".");
        md.AppendLine();
        md.AppendLine("Per-layer reconstruction error ||WX - W'X||² / ||WX||² at 50% (calibration inputs):");
        md.AppendLine();
        md.AppendLine("| tensor | magnitude | Wanda | SparseGPT |");
        md.AppendLine("|---|---|---|---|");
        foreach (var e in order) md.AppendLine(string.Create(inv, $"| {e.Tensor} | {e.Mag:F4} | {e.Wanda:F4}{(e.Wanda < e.Mag ? "" : " (not below magnitude)")} | {e.Gpt:F4} |"));
        md.AppendLine();
        md.AppendLine($"SparseGPT lowest on {order.Count(e => e.Gpt < e.Wanda && e.Gpt < e.Mag)} of {order.Count} matrices; Wanda below magnitude on {order.Count(e => e.Wanda < e.Mag)} of {order.Count}.");
        File.WriteAllText(Path.Combine(docs, "pruning-results.md"), md.ToString());
        File.Delete(partial);

        // ppl / dense against sparsity, log scale, one line per method, 2:4 as single markers.
        var plt = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int ci = 0;
        foreach (var m in methods)
        {
            var color = palette.GetColor(ci++);
            var pts = settings.Where(x => !x.Contains(':')).Select(x => (X: double.Parse(x, inv) * 100, Y: Math.Log10(ppl[(m, x)] / dense))).ToArray();
            var line = plt.Add.Scatter(pts.Select(p => p.X).ToArray(), pts.Select(p => p.Y).ToArray(), color);
            line.LegendText = m;
            var nm = plt.Add.Scatter(new[] { 50.0 }, new[] { Math.Log10(ppl[(m, "2:4")] / dense) }, color);
            nm.LineWidth = 0;
            nm.MarkerSize = 10;
            nm.MarkerShape = ScottPlot.MarkerShape.OpenSquare;
            nm.LegendText = $"{m} 2:4";
        }
        plt.XLabel("sparsity (%)");
        plt.YLabel("log10(ppl / dense)");
        plt.Title("pare-ref test perplexity after pruning, as a ratio to dense");
        plt.ShowLegend(ScottPlot.Alignment.UpperLeft);
        plt.SavePng(Path.Combine(docs, "pruning-ppl.png"), 900, 520);

        // The papers' ordering; a run that breaks it says so in its exit code.
        var problems = new List<string>();
        if (!(ppl[("sparsegpt", "0.5")] < ppl[("magnitude", "0.5")] && ppl[("wanda", "0.5")] < ppl[("magnitude", "0.5")])) problems.Add("at 50% SparseGPT and Wanda should beat magnitude");
        // SparseGPT minimises exactly this error: lowest everywhere. Wanda's groups are rows, magnitude's threshold is per
        // matrix, and on a matrix or two the uneven rows magnitude leaves win.
        problems.AddRange(order.Where(e => !(e.Gpt < e.Wanda && e.Gpt < e.Mag)).Select(e => $"{e.Tensor}: SparseGPT {e.Gpt}, Wanda {e.Wanda}, magnitude {e.Mag}"));
        if (order.Count(e => e.Wanda < e.Mag) < 0.75 * order.Count) problems.Add("Wanda should beat magnitude on at least three quarters of the matrices");
        foreach (var p in problems) Console.Error.WriteLine($"unexpected: {p}");
        return problems.Count == 0 ? 0 : 1;
    }
    finally { Directory.Delete(tmp, true); }
}

int SparseSpeed(string dir, Options o)
{
    int rounds = o.Int("--rounds", 5), promptLen = o.Int("--prompt", 64), decode = o.Int("--decode", 32);
    string types = o.Get("--types", "F16,Q8_0"), sparsities = o.Get("--sparsities", "0.5,0.7");
    string? outFile = o.GetOrNull("--out");
    var lines = new List<string>
    {
        $"2 threads, prompt {promptLen} random tokens then {decode} greedy decode steps, {rounds} interleaved rounds, medians (tok/s)",
        "",
        "| weights | sparsity | file MiB dense / compact | Pare dense decode | Pare compact decode | speedup | llama.cpp dense decode | Pare dense prefill | Pare compact prefill | llama.cpp prefill |",
        "|---|---|---|---|---|---|---|---|---|---|",
    };
    var rng = new Random(1);
    int[] prompt = [.. Enumerable.Range(0, promptLen).Select(_ => rng.Next(32000))];
    NativeLibraryConfig.All.WithLogCallback((_, _) => { });
    NativeApi.llama_empty_call();
    foreach (var type in types.Split(','))
        foreach (var s in sparsities.Split(','))
        {
            string dense = Path.Combine(dir, $"mag-{type}-{s}.gguf"), compact = Path.Combine(dir, $"mag-{type}-{s}-bitmask.gguf");
            if (!File.Exists(dense) || !File.Exists(compact)) { Console.Error.WriteLine($"missing {dense} or {compact}"); continue; }
            using var md = LlamaModel.Load(dense);
            using var ms = LlamaModel.Load(compact);
            using var lc = new LlamaCppRunner(dense);
            var r = new Dictionary<string, List<double>>();
            void Add(string k, double v) { if (!r.TryGetValue(k, out var l)) r[k] = l = []; l.Add(v); }
            // Warm-up: pages in, JIT settled.
            PareRun(md, prompt[..8], 2); PareRun(ms, prompt[..8], 2); lc.Run(prompt[..8], 2);
            for (int round = 0; round < rounds; round++)
            {
                var (p1, d1) = PareRun(md, prompt, decode); Add("pd", p1); Add("dd", d1);
                var (p2, d2) = PareRun(ms, prompt, decode); Add("ps", p2); Add("ds", d2);
                var (p3, d3) = lc.Run(prompt, decode); Add("pl", p3); Add("dl", d3);
            }
            double M(string k) => Median(r[k]);
            string F(double v) => v.ToString("0.0", inv);
            lines.Add(string.Create(inv, $"| {type} | {s} | {new FileInfo(dense).Length / 1048576.0:F0} / {new FileInfo(compact).Length / 1048576.0:F0} | {F(M("dd"))} | {F(M("ds"))} | ") +
                $"{(M("ds") / M("dd")).ToString("0.00", inv)}x | {F(M("dl"))} | {F(M("pd"))} | {F(M("ps"))} | {F(M("pl"))} |");
            Console.WriteLine(lines[^1]);
            if (outFile != null) File.WriteAllLines(outFile, lines);
        }
    foreach (var l in lines) Console.WriteLine(l);
    if (outFile != null) File.WriteAllLines(outFile, lines);
    return 0;
}

int SparseMicro(Options o)
{
    const int rows = 5632, cols = 2048, rounds = 5;
    int copies = Math.Max(1, o.Int("--copies", 40));
    int calls = Math.Max(3 * copies, 40);
    var rng = new Random(1);
    var x = Enumerable.Range(0, cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    var y = new float[rows];
    Console.WriteLine($"{rows} x {cols} matrix, {copies} copies multiplied in turn, {calls} products per timing, 2 threads, median of {rounds}");
    foreach (var type in new[] { GgmlType.F16, GgmlType.Q8_0 })
        foreach (var s in new[] { 0.5, 0.7 })
        {
            var v = new float[rows * cols];
            for (int i = 0; i < v.Length; i++) v[i] = rng.NextDouble() < s ? 0 : (float)(rng.NextDouble() * 2 - 1) * 0.05f;
            var dense = Quantizer.Quantize(type, v);
            var blob = SparseMatrix.Encode(type, rows, cols, dense);
            var keep = new List<byte[]>();
            var dms = new WeightMatrix[copies];
            var wms = new WeightMatrix[copies];
            for (int k = 0; k < copies; k++)
            {
                var d1 = Pinned(dense);
                var b1 = Pinned(blob);
                dms[k] = new WeightMatrix("m", type, rows, cols, Marshal.UnsafeAddrOfPinnedArrayElement(d1, 0), d1.Length);
                wms[k] = new WeightMatrix("m", rows, cols, SparseMatrix.Open("m", Marshal.UnsafeAddrOfPinnedArrayElement(b1, 0), b1.Length, rows, cols));
                keep.Add(d1); keep.Add(b1);
            }
            var t = new Dictionary<string, List<double>> { ["dense"] = [], ["compact"] = [] };
            double Time(WeightMatrix[] ms)
            {
                foreach (var m in ms) MatMul.MatVec(m, x, y, 2);
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < calls; i++) MatMul.MatVec(ms[i % copies], x, y, 2);
                return sw.Elapsed.TotalMilliseconds / calls;
            }
            for (int r = 0; r < rounds; r++)
            {
                t["dense"].Add(Time(dms));
                t["compact"].Add(Time(wms));
            }
            double d = Median(t["dense"]), c = Median(t["compact"]);
            Console.WriteLine(string.Create(inv, $"{type} {s:P0}: dense {d:F3} ms ({dense.Length / d / 1e6:F1} GB/s), compact {c:F3} ms ({d / c:F2}x); ") +
                string.Create(inv, $"bytes {dense.Length} -> {blob.Length} ({(double)dense.Length / blob.Length:F2}x)"));
            GC.KeepAlive(keep);
        }
    return 0;
}

int PruneTiming(Options o)
{
    int samples = o.Int("--samples", 128);
    var cfg = new LlamaConfig
    {
        Dim = 256, Layers = 8, Heads = 8, KvHeads = 4, HeadDim = 32, RopeDim = 32, FfnDim = 704, VocabSize = 8192, ContextLength = 512,
        TiedEmbeddings = true, RopeBase = 10000f, RmsEps = 1e-5f,
    };
    string dir = Directory.CreateTempSubdirectory("pare-prune-timing-").FullName;
    try
    {
        string model = Path.Combine(dir, "pare-ref-shaped.gguf");
        SyntheticModel.Write(model, cfg, GgmlType.F32, SyntheticModel.ByteLevelVocab(cfg.VocabSize), 7);
        foreach (var m in new[] { PruneMethod.Magnitude, PruneMethod.Wanda, PruneMethod.SparseGpt })
        {
            var po = new PruneOptions { Method = m, Pattern = SparsityPattern.Unstructured(0.5), Samples = samples, Seed = 0, Threads = 2 };
            var sw = Stopwatch.StartNew();
            var r = Pruner.Run(model, Path.Combine(dir, $"{m}.gguf"), po, new CalibrationSource.RandomTokens());
            Console.WriteLine(string.Create(inv, $"{m}: {sw.Elapsed.TotalSeconds:F1} s for {samples} x {r.SeqLen} calibration tokens (8 blocks, 56 matrices), 2 threads; ") +
                string.Create(inv, $"mean rel. error {r.Layers.Average(l => l.RelativeError ?? 0):F4}"));
        }
    }
    finally { Directory.Delete(dir, true); }
    return 0;
}

static byte[] Pinned(byte[] src)
{
    var p = GC.AllocateArray<byte>(src.Length, pinned: true);
    src.CopyTo(p, 0);
    return p;
}

static (double Prefill, double Decode) PareRun(LlamaModel m, int[] prompt, int decode)
{
    var session = m.CreateSession(new SessionOptions { Threads = 2, ContextLength = 256 });
    var sw = Stopwatch.StartNew();
    var logits = session.Forward(prompt);
    double p = prompt.Length / sw.Elapsed.TotalSeconds;
    sw.Restart();
    for (int i = 0; i < decode; i++) logits = session.Forward([Sampler.ArgMax(logits)]);
    return (p, decode / sw.Elapsed.TotalSeconds);
}

static double Median(List<double> xs)
{
    var s = xs.Order().ToArray();
    return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
}

/// <summary>--name value pairs after the verb's positional arguments.</summary>
sealed class Options(string[] args)
{
    public string? GetOrNull(string name)
    {
        int i = Array.IndexOf(args, name);
        if (i < 0) return null;
        if (i + 1 >= args.Length) throw new PareException($"{name} needs a value");
        return args[i + 1];
    }

    public string Get(string name, string fallback) => GetOrNull(name) ?? fallback;

    public bool Has(string name) => Array.IndexOf(args, name) >= 0;

    public int Int(string name, int fallback) => GetOrNull(name) is not { } v ? fallback
        : int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n >= 0 ? n : throw new PareException($"{name}: '{v}' is not a whole number");
}

sealed class LlamaCppRunner : IDisposable
{
    readonly LLamaWeights _w;
    readonly LLamaContext _c;

    public LlamaCppRunner(string path)
    {
        var p = new ModelParams(path) { ContextSize = 256, GpuLayerCount = 0, Threads = 2, BatchThreads = 2, BatchSize = 256, UBatchSize = 256 };
        _w = LLamaWeights.LoadFromFile(p);
        _c = _w.CreateContext(p);
    }

    public (double Prefill, double Decode) Run(int[] prompt, int decode)
    {
        _c.NativeHandle.MemoryClear();
        var batch = new LLamaBatch();
        for (int i = 0; i < prompt.Length; i++) batch.Add((LLamaToken)prompt[i], i, (LLamaSeqId)0, i == prompt.Length - 1);
        var sw = Stopwatch.StartNew();
        if (_c.NativeHandle.Decode(batch) != DecodeResult.Ok) throw new InvalidOperationException("llama.cpp decode failed");
        var logits = _c.NativeHandle.GetLogitsIth(batch.TokenCount - 1).ToArray();
        double p = prompt.Length / sw.Elapsed.TotalSeconds;
        sw.Restart();
        for (int i = 0; i < decode; i++)
        {
            batch.Clear();
            batch.Add((LLamaToken)Sampler.ArgMax(logits), prompt.Length + i, (LLamaSeqId)0, true);
            if (_c.NativeHandle.Decode(batch) != DecodeResult.Ok) throw new InvalidOperationException("llama.cpp decode failed");
            logits = _c.NativeHandle.GetLogitsIth(0).ToArray();
        }
        return (p, decode / sw.Elapsed.TotalSeconds);
    }

    public void Dispose() { _c.Dispose(); _w.Dispose(); }
}
