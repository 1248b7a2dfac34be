using System.Globalization;
using System.Runtime.InteropServices;
using Pare.Kernels;
using Pare.Kernels.Sparse;
using Pare.Tensors;

/// <summary>
/// Row-group compact sparse decode per thread (<see cref="RowGroupSparseMatrix"/>): a matrix pruned so that each group
/// of G rows keeps the same random columns (what `pare prune --row-group G` writes for random weights), multiplied by
/// Pare's row-group kernel, by the bitmask compact kernel (<see cref="SparseMatrix"/>) on the same matrix, and densely
/// by llama.cpp's vec_dot and Pare's dense kernel; one thread, alternating rounds, medians of thread CPU time.
/// Speedup = llama.cpp dense time / row-group time per product.
///
///   dotnet benchmarks/Pare.KernelBench/bin/Release/net10.0/Pare.KernelBench.dll rowgroup [--types F16,Q8_0]
///       [--sparsity 0.5,0.7] [--groups 4,8] [--rounds 7] [--cols 2048] [--l2-kb 512] [--dram-mb 256]
/// </summary>
static unsafe class RowGroupBench
{
    public static int Run(string[] args)
    {
        int[] groups = [4, 8];
        bool Groups(string option, string v)
        {
            if (option != "--groups") return false;
            groups = [.. v.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))];
            return true;
        }
        void CheckGroups()
        {
            foreach (var g in groups)
                if (g < 1 || g > RowGroupSparseMatrix.MaxGroupRows) throw new ArgumentException($"--groups values must be in 1..{RowGroupSparseMatrix.MaxGroupRows}");
        }
        if (SparseBenchArgs.Parse(args, "rowgroup", defaultRounds: 7, Groups, CheckGroups) is not { } a) return 1;

        var ggml = Ggml.Load();
        a.PrintHeader("Row-group compact sparse vs dense decode kernels",
            "format", "where", "sparsity", "G", "dense MB", "row-group MB", "row-group GB/s (its bytes)", "vs llama.cpp dense", "vs Pare dense", "bitmask vs llama.cpp dense", "max rel. diff vs dense");
        foreach (var type in a.Types)
            foreach (var (where, bytes) in a.Sizes)
                foreach (var sp in a.Sparsities)
                    foreach (var g in groups)
                    {
                        long rowBytes = GgmlTypeInfo.RowBytes(type, a.Cols);
                        int rows = (int)Math.Max(g, bytes / rowBytes / g * g);
                        using var m = new RandomMatrix(type, rows, a.Cols, seed: 7);
                        Prune(m, type, sp, g, seed: 11);
                        var r = Measure(ggml, m, g, a.Rounds);
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"| {type} | {where} | {sp:P0} | {g} | {m.Bytes / 1e6:F1} | {r.GroupBytes / 1e6:F1} | {r.GroupBytes / r.Group / 1e9:F1} | {r.Llama / r.Group:F2}x | {r.PareDense / r.Group:F2}x | {r.Llama / r.Bitmask:F2}x | {r.MaxRelDiff:E1} |"));
                    }
        SparseBenchArgs.PrintFooter();
        return 0;
    }

    /// <summary>
    /// Zeroes, in every group of <paramref name="g"/> rows, the same round(sparsity x cols) random columns (F16 halves;
    /// Q8_0 quants, block scales kept). Kept quants of -128 become -127 (no quantizer writes -128).
    /// </summary>
    static void Prune(RandomMatrix m, GgmlType type, double sparsity, int g, int seed)
    {
        var w = m.Matrix;
        byte* p = (byte*)w.Data;
        var rng = new Random(seed);
        int k = (int)Math.Round(sparsity * w.Cols);
        var order = Enumerable.Range(0, w.Cols).ToArray();
        var drop = new bool[w.Cols];
        for (int r = 0; r < w.Rows; r++)
        {
            if (r % g == 0)
            {
                rng.Shuffle(order);
                Array.Clear(drop);
                for (int i = 0; i < k; i++) drop[order[i]] = true;
            }
            byte* row = p + (long)r * w.RowBytes;
            for (int c = 0; c < w.Cols; c++)
            {
                if (type == GgmlType.Q8_0 && row[c / 32 * 34 + 2 + c % 32] == 0x80) row[c / 32 * 34 + 2 + c % 32] = 0x81;
                if (!drop[c]) continue;
                if (type == GgmlType.F16) ((ushort*)row)[c] = 0;
                else row[c / 32 * 34 + 2 + c % 32] = 0;
            }
        }
    }

    static (double Group, double Llama, double PareDense, double Bitmask, long GroupBytes, double MaxRelDiff) Measure(Ggml ggml, RandomMatrix m, int g, int rounds)
    {
        var w = m.Matrix;
        var dense = new ReadOnlySpan<byte>((void*)w.Data, checked((int)m.Bytes));
        byte[] gblob = RowGroupSparseMatrix.Encode(w.Type, w.Rows, w.Cols, g, dense);
        byte[] bblob = SparseMatrix.Encode(w.Type, w.Rows, w.Cols, dense);
        byte* gdata = SparseBenchRuns.AlignedCopy(gblob);
        byte* bdata = SparseBenchRuns.AlignedCopy(bblob);
        try
        {
            var wg = new WeightMatrix("bench_rowgroup", w.Rows, w.Cols, RowGroupSparseMatrix.Open("bench_rowgroup", (nint)gdata, gblob.Length, w.Rows, w.Cols));
            var wb = new WeightMatrix("bench_bitmask", w.Rows, w.Cols, SparseMatrix.Open("bench_bitmask", (nint)bdata, bblob.Length, w.Rows, w.Cols));
            var yg = new float[w.Rows]; var yd = new float[w.Rows]; var yl = new float[w.Rows]; var yb = new float[w.Rows];
            int reps = (int)Math.Max(1, (256L << 20) / m.Bytes);
            void RunGroup() => MatMul.MatVec(wg, m.X, yg, 1);
            void RunDense() => MatMul.MatVec(w, m.X, yd, 1);
            void RunBitmask() => MatMul.MatVec(wb, m.X, yb, 1);
            Action[] runs = [RunGroup, SparseBenchRuns.LlamaDense(ggml, w, m.X, yl), RunDense, RunBitmask];
            SparseBenchRuns.Warm(runs);
            double maxRelDiff = SparseBenchRuns.MaxRelDiff(yg, yd);
            var t = SparseBenchRuns.Time(runs, rounds, reps);
            return (t[0], t[1], t[2], t[3], gblob.Length, maxRelDiff);
        }
        finally { NativeMemory.AlignedFree(gdata); NativeMemory.AlignedFree(bdata); }
    }
}
