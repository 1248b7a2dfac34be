using System.Globalization;
using System.Runtime.InteropServices;
using Pare.Kernels;
using Pare.Kernels.Sparse;
using Pare.Tensors;

/// <summary>
/// Compact sparse decode per thread: Pare's compact-format kernel on a pruned matrix against llama.cpp's dense vec_dot
/// (and Pare's dense kernel) on the same pruned matrix stored dense, one thread, alternating rounds, medians of thread
/// CPU time. The matrix is the benchmark's random one with a fraction of its values zeroed at random (for random
/// weights, magnitude pruning is a random mask too). Speedup = dense time / compact time per product.
///
///   dotnet benchmarks/Pare.KernelBench/bin/Release/net10.0/Pare.KernelBench.dll sparse [--types F16,Q8_0]
///       [--sparsity 0.5,0.7] [--rounds 9] [--cols 2048] [--l2-kb 512] [--dram-mb 256]
/// </summary>
static unsafe class SparseBench
{
    public static int Run(string[] args)
    {
        if (SparseBenchArgs.Parse(args, "sparse", defaultRounds: 9) is not { } a) return 1;

        var ggml = Ggml.Load();
        a.PrintHeader("Compact sparse vs dense decode kernels",
            "format", "where", "sparsity", "dense MB", "compact MB", "Pare compact GB/s (compact bytes)", "vs llama.cpp dense", "vs Pare dense", "max rel. diff");
        foreach (var type in a.Types)
            foreach (var (where, bytes) in a.Sizes)
                foreach (var sp in a.Sparsities)
                {
                    long rowBytes = GgmlTypeInfo.RowBytes(type, a.Cols);
                    int rows = (int)Math.Max(4, bytes / rowBytes);
                    using var m = new RandomMatrix(type, rows, a.Cols, seed: 7);
                    Prune(m, type, sp, seed: 11);
                    var r = Measure(ggml, m, sp, a.Rounds);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"| {type} | {where} | {sp:P0} | {m.Bytes / 1e6:F1} | {r.CompactBytes / 1e6:F1} | {r.CompactBytes / r.Compact / 1e9:F1} | {r.Llama / r.Compact:F2}x | {r.PareDense / r.Compact:F2}x | {r.MaxRelDiff:E1} |"));
                }
        SparseBenchArgs.PrintFooter();
        return 0;
    }

    /// <summary>Zeroes a random fraction of the values in place (F16 halves; Q8_0 quants, block scales kept; Q8_0 -128 becomes -127).</summary>
    static void Prune(RandomMatrix m, GgmlType type, double sparsity, int seed)
    {
        var w = m.Matrix;
        byte* p = (byte*)w.Data;
        // The random matrix tiles ~4 MB of distinct rows; prune those the same way so the copies stay identical bytes.
        var rng = new Random(seed);
        for (int r = 0; r < w.Rows; r++)
        {
            byte* row = p + (long)r * w.RowBytes;
            for (int c = 0; c < w.Cols; c++)
            {
                // The random bytes include the quant -128, which no quantizer writes and the compact format refuses.
                if (type == GgmlType.Q8_0 && row[c / 32 * 34 + 2 + c % 32] == 0x80) row[c / 32 * 34 + 2 + c % 32] = 0x81;
                if (rng.NextDouble() >= sparsity) continue;
                if (type == GgmlType.F16) ((ushort*)row)[c] = 0;
                else row[c / 32 * 34 + 2 + c % 32] = 0;
            }
        }
    }

    static (double Compact, double Llama, double PareDense, long CompactBytes, double MaxRelDiff) Measure(Ggml ggml, RandomMatrix m, double sp, int rounds)
    {
        var w = m.Matrix;
        byte[] blob = SparseMatrix.Encode(w.Type, w.Rows, w.Cols, new ReadOnlySpan<byte>((void*)w.Data, checked((int)m.Bytes)));
        byte* sdata = SparseBenchRuns.AlignedCopy(blob);
        try
        {
            var sparse = SparseMatrix.Open("bench_sparse", (nint)sdata, blob.Length, w.Rows, w.Cols);
            var ws = new WeightMatrix("bench_sparse", w.Rows, w.Cols, sparse);
            var ys = new float[w.Rows]; var yd = new float[w.Rows]; var yl = new float[w.Rows];
            int reps = (int)Math.Max(1, (256L << 20) / m.Bytes);
            void RunCompact() => MatMul.MatVec(ws, m.X, ys, 1);
            void RunDense() => MatMul.MatVec(w, m.X, yd, 1);
            Action[] runs = [RunCompact, SparseBenchRuns.LlamaDense(ggml, w, m.X, yl), RunDense];
            SparseBenchRuns.Warm(runs);
            double maxRelDiff = SparseBenchRuns.MaxRelDiff(ys, yd);
            var t = SparseBenchRuns.Time(runs, rounds, reps);
            return (t[0], t[1], t[2], blob.Length, maxRelDiff);
        }
        finally { NativeMemory.AlignedFree(sdata); }
    }
}
