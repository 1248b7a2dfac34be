using System.Diagnostics;
using System.Globalization;
using LLama;
using LLama.Common;
using LLama.Native;
using Pare.Generation;
using Pare.Models;
using Pare.Tests.TestSupport;
using Xunit.Abstractions;

namespace Pare.Tests.Pruning;

/// <summary>
/// Side-by-side decode/prefill speed of magnitude-pruned copies of the 852M random model: Pare dense (zeros stored),
/// Pare compact (bitmask), llama.cpp dense, interleaved in rounds in one process, medians reported. Opt-in: it needs the
/// pruned files (see docs/pruning.md) and several minutes, so it runs only with PARE_SPARSE_BENCH=DIR
/// (DIR holding mag-{F16,Q8_0}-{0.5,0.7}.gguf and their -bitmask copies); PARE_SPARSE_BENCH_OUT=FILE saves the table.
/// </summary>
public class SparseSpeedBenchmark(ITestOutputHelper output)
{
    static readonly int Prompt = int.TryParse(Environment.GetEnvironmentVariable("PARE_SPARSE_BENCH_PROMPT"), out var p) ? p : 64;
    static readonly int Decode = int.TryParse(Environment.GetEnvironmentVariable("PARE_SPARSE_BENCH_DECODE"), out var d) ? d : 32;

    [Fact]
    public void Decode_speed_compact_vs_dense_side_by_side()
    {
        string? dir = Environment.GetEnvironmentVariable("PARE_SPARSE_BENCH");
        if (dir == null) { output.WriteLine("not run: set PARE_SPARSE_BENCH=DIR (see docs/pruning.md)"); return; }
        int rounds = int.TryParse(Environment.GetEnvironmentVariable("PARE_SPARSE_BENCH_ROUNDS"), out var rr) ? rr : 5;
        string types = Environment.GetEnvironmentVariable("PARE_SPARSE_BENCH_TYPES") ?? "F16,Q8_0";
        var lines = new List<string>
        {
            $"2 threads, prompt {Prompt} random tokens then {Decode} greedy decode steps, {rounds} interleaved rounds, medians (tok/s)",
            "",
            "| weights | sparsity | file MiB dense / compact | Pare dense decode | Pare compact decode | speedup | llama.cpp dense decode | Pare dense prefill | Pare compact prefill | llama.cpp prefill |",
            "|---|---|---|---|---|---|---|---|---|---|",
        };
        var rng = new Random(1);
        int[] prompt = [.. Enumerable.Range(0, Prompt).Select(_ => rng.Next(32000))];
        string sparsities = Environment.GetEnvironmentVariable("PARE_SPARSE_BENCH_SPARSITIES") ?? "0.5,0.7";
        foreach (var type in types.Split(','))
            foreach (var s in sparsities.Split(','))
            {
                string dense = Path.Combine(dir, $"mag-{type}-{s}.gguf"), compact = Path.Combine(dir, $"mag-{type}-{s}-bitmask.gguf");
                if (!File.Exists(dense) || !File.Exists(compact)) { output.WriteLine($"missing {dense} or {compact}"); continue; }
                using var md = LlamaModel.Load(dense);
                using var ms = LlamaModel.Load(compact);
                using var lc = new LlamaCppRunner(dense);
                var r = new Dictionary<string, List<double>>();
                void Add(string k, double v) { if (!r.TryGetValue(k, out var l)) r[k] = l = []; l.Add(v); }
                // Warm-up: pages in, JIT settled.
                PareRun(md, prompt[..8], 2); PareRun(ms, prompt[..8], 2); lc.Run(prompt[..8], 2);
                for (int round = 0; round < rounds; round++)
                {
                    var (p1, d1) = PareRun(md, prompt, Decode); Add("pd", p1); Add("dd", d1);
                    var (p2, d2) = PareRun(ms, prompt, Decode); Add("ps", p2); Add("ds", d2);
                    var (p3, d3) = lc.Run(prompt, Decode); Add("pl", p3); Add("dl", d3);
                }
                double M(string k) => Median(r[k]);
                string F(double v) => v.ToString("0.0", CultureInfo.InvariantCulture);
                lines.Add($"| {type} | {s} | {new FileInfo(dense).Length / 1048576.0:F0} / {new FileInfo(compact).Length / 1048576.0:F0} | {F(M("dd"))} | {F(M("ds"))} | " +
                    $"{(M("ds") / M("dd")).ToString("0.00", CultureInfo.InvariantCulture)}x | {F(M("dl"))} | {F(M("pd"))} | {F(M("ps"))} | {F(M("pl"))} |");
                output.WriteLine(lines[^1]);
                if (Environment.GetEnvironmentVariable("PARE_SPARSE_BENCH_OUT") is { } partial) File.WriteAllLines(partial, lines);
            }
        foreach (var l in lines) output.WriteLine(l);
        if (Environment.GetEnvironmentVariable("PARE_SPARSE_BENCH_OUT") is { } outFile) File.WriteAllLines(outFile, lines);
    }

    /// <summary>
    /// An ffn-sized matrix (5632 x 2048), decode products only: dense kernel vs the compact kernel, interleaved, medians.
    /// PARE_SPARSE_MICRO_COPIES copies of each (default 40: about 1 GB dense F16, so products read from memory as in a
    /// model, not from the 260 MB L3) are multiplied in turn. Opt-in with PARE_SPARSE_MICRO=1.
    /// </summary>
    [Fact]
    public unsafe void Kernel_micro_benchmark()
    {
        if (Environment.GetEnvironmentVariable("PARE_SPARSE_MICRO") == null) { output.WriteLine("not run: set PARE_SPARSE_MICRO=1"); return; }
        const int rows = 5632, cols = 2048, rounds = 5;
        int copies = int.TryParse(Environment.GetEnvironmentVariable("PARE_SPARSE_MICRO_COPIES"), out var cp) ? Math.Max(1, cp) : 40;
        int calls = Math.Max(3 * copies, 40);
        var rng = new Random(1);
        var x = Enumerable.Range(0, cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var y = new float[rows];
        foreach (var type in new[] { Pare.Tensors.GgmlType.F16, Pare.Tensors.GgmlType.Q8_0 })
            foreach (var s in new[] { 0.5, 0.7 })
            {
                var v = new float[rows * cols];
                for (int i = 0; i < v.Length; i++) v[i] = rng.NextDouble() < s ? 0 : (float)(rng.NextDouble() * 2 - 1) * 0.05f;
                var dense = Pare.Kernels.Quantizer.Quantize(type, v);
                var blob = Pare.Kernels.Sparse.SparseMatrix.Encode(type, rows, cols, dense);
                var keep = new List<byte[]>();
                var dms = new Pare.Tensors.WeightMatrix[copies];
                var wms = new Pare.Tensors.WeightMatrix[copies];
                for (int k = 0; k < copies; k++)
                {
                    dms[k] = Kernels.KernelTestUtil.Matrix(type, rows, cols, dense, out var d1);
                    var pinned = GC.AllocateArray<byte>(blob.Length, pinned: true);
                    blob.CopyTo(pinned, 0);
                    var sm = Pare.Kernels.Sparse.SparseMatrix.Open("m", (nint)System.Runtime.CompilerServices.Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(pinned)), blob.Length, rows, cols);
                    wms[k] = new Pare.Tensors.WeightMatrix("m", rows, cols, sm);
                    keep.Add(d1); keep.Add(pinned);
                }
                var t = new Dictionary<string, List<double>> { ["dense"] = [], ["compact"] = [] };
                double Time(Pare.Tensors.WeightMatrix[] ms)
                {
                    foreach (var m in ms) Pare.Kernels.MatMul.MatVec(m, x, y, 2);
                    var sw = Stopwatch.StartNew();
                    for (int i = 0; i < calls; i++) Pare.Kernels.MatMul.MatVec(ms[i % copies], x, y, 2);
                    return sw.Elapsed.TotalMilliseconds / calls;
                }
                for (int r = 0; r < rounds; r++)
                {
                    t["dense"].Add(Time(dms));
                    t["compact"].Add(Time(wms));
                }
                double d = Median(t["dense"]), c = Median(t["compact"]);
                output.WriteLine($"{type} {s:P0} ({copies} copies): dense {d:F3} ms ({dense.Length / d / 1e6:F1} GB/s), compact {c:F3} ms ({d / c:F2}x); " +
                    $"bytes {dense.Length} -> {blob.Length} ({(double)dense.Length / blob.Length:F2}x)");
                GC.KeepAlive(keep);
            }
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

    sealed class LlamaCppRunner : IDisposable
    {
        readonly LLamaWeights _w;
        readonly LLamaContext _c;

        public LlamaCppRunner(string path)
        {
            LlamaCppOracle.EnsureNative();
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
}
