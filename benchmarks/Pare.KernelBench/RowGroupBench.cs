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
        GgmlType[] types = [GgmlType.F16, GgmlType.Q8_0];
        double[] sparsities = [0.5, 0.7];
        int[] groups = [4, 8];
        int rounds = 7, cols = 2048;
        long l2Kb = 512, dramMb = 256;
        try
        {
            for (int i = 0; i < args.Length; i += 2)
            {
                if (i + 1 >= args.Length) throw new ArgumentException($"{args[i]} needs a value");
                string v = args[i + 1];
                switch (args[i])
                {
                    case "--types": types = [.. v.Split(',').Select(Enum.Parse<GgmlType>)]; break;
                    case "--sparsity": sparsities = [.. v.Split(',').Select(s => double.Parse(s, CultureInfo.InvariantCulture))]; break;
                    case "--groups": groups = [.. v.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))]; break;
                    case "--rounds": rounds = int.Parse(v, CultureInfo.InvariantCulture); break;
                    case "--cols": cols = int.Parse(v, CultureInfo.InvariantCulture); break;
                    case "--l2-kb": l2Kb = long.Parse(v, CultureInfo.InvariantCulture); break;
                    case "--dram-mb": dramMb = long.Parse(v, CultureInfo.InvariantCulture); break;
                    default: throw new ArgumentException($"unknown option {args[i]}");
                }
            }
            if (cols % 256 != 0 || cols <= 0) throw new ArgumentException("--cols must be a positive multiple of 256");
            if (rounds < 1 || l2Kb < 1 || dramMb < 1) throw new ArgumentException("--rounds, --l2-kb and --dram-mb must be positive");
            foreach (var t in types)
                if (t is not (GgmlType.F16 or GgmlType.Q8_0)) throw new ArgumentException($"type {t}: rowgroup mode takes F16 and Q8_0");
            foreach (var s in sparsities)
                if (!(s > 0 && s < 1)) throw new ArgumentException("--sparsity values must be in (0, 1)");
            foreach (var g in groups)
                if (g < 1 || g > RowGroupSparseMatrix.MaxGroupRows) throw new ArgumentException($"--groups values must be in 1..{RowGroupSparseMatrix.MaxGroupRows}");
        }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
        {
            Console.Error.WriteLine($"kernel-bench: error: {e.Message}");
            return 1;
        }

        var ggml = Ggml.Load();
        Console.WriteLine($"# Row-group compact sparse vs dense decode kernels, one thread ({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC)");
        Console.WriteLine();
        Console.WriteLine($"CPU: {Cpu()}, {Environment.ProcessorCount} logical CPUs; Pare ISA paths: {MatMul.DescribeIsa()}");
        Console.WriteLine($"Load average at start (1, 5, 15 min): {Load()}");
        Console.WriteLine($"Columns {cols}; {rounds} alternating rounds, medians of thread CPU time per product; speedup = dense time / compact time.");
        Console.WriteLine();
        Console.WriteLine("| format | where | sparsity | G | dense MB | row-group MB | row-group GB/s (its bytes) | vs llama.cpp dense | vs Pare dense | bitmask vs llama.cpp dense | max rel. diff vs dense |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var type in types)
            foreach (var (where, bytes) in new[] { ("L2", l2Kb * 1024L), ("DRAM", dramMb * 1024L * 1024) })
                foreach (var sp in sparsities)
                    foreach (var g in groups)
                    {
                        long rowBytes = GgmlTypeInfo.RowBytes(type, cols);
                        int rows = (int)Math.Max(g, bytes / rowBytes / g * g);
                        using var m = new RandomMatrix(type, rows, cols, seed: 7);
                        Prune(m, type, sp, g, seed: 11);
                        var r = Measure(ggml, m, g, rounds);
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"| {type} | {where} | {sp:P0} | {g} | {m.Bytes / 1e6:F1} | {r.GroupBytes / 1e6:F1} | {r.GroupBytes / r.Group / 1e9:F1} | {r.Llama / r.Group:F2}x | {r.PareDense / r.Group:F2}x | {r.Llama / r.Bitmask:F2}x | {r.MaxRelDiff:E1} |"));
                    }
        Console.WriteLine();
        Console.WriteLine($"Load average at end (1, 5, 15 min): {Load()}");
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
        byte* gdata = (byte*)NativeMemory.AlignedAlloc((nuint)gblob.Length, 64);
        byte* bdata = (byte*)NativeMemory.AlignedAlloc((nuint)bblob.Length, 64);
        try
        {
            gblob.AsSpan().CopyTo(new Span<byte>(gdata, gblob.Length));
            bblob.AsSpan().CopyTo(new Span<byte>(bdata, bblob.Length));
            var wg = new WeightMatrix("bench_rowgroup", w.Rows, w.Cols, RowGroupSparseMatrix.Open("bench_rowgroup", (nint)gdata, gblob.Length, w.Rows, w.Cols));
            var wb = new WeightMatrix("bench_bitmask", w.Rows, w.Cols, SparseMatrix.Open("bench_bitmask", (nint)bdata, bblob.Length, w.Rows, w.Cols));
            var yg = new float[w.Rows]; var yd = new float[w.Rows]; var yl = new float[w.Rows]; var yb = new float[w.Rows];
            var traits = ggml.Traits(w.Type);
            var fromFloat = ggml.Traits((GgmlType)traits.VecDotType, needVecDot: false).FromFloat;
            var xq = new byte[ggml.ActivationBytes(traits.VecDotType, w.Cols)];
            int reps = (int)Math.Max(1, (256L << 20) / m.Bytes);
            void RunGroup() => MatMul.MatVec(wg, m.X, yg, 1);
            void RunDense() => MatMul.MatVec(w, m.X, yd, 1);
            void RunBitmask() => MatMul.MatVec(wb, m.X, yb, 1);
            void RunLlama()
            {
                fixed (float* px = m.X, py = yl)
                fixed (byte* pq = xq)
                {
                    fromFloat(px, pq, w.Cols);
                    byte* pw = (byte*)w.Data;
                    for (int r = 0; r < w.Rows; r++) traits.VecDot(w.Cols, py + r, 0, pw + (long)r * w.RowBytes, 0, pq, 0, 1);
                }
            }
            Action[] runs = [RunGroup, RunLlama, RunDense, RunBitmask];
            foreach (var a in runs) { a(); a(); }
            double maxY = yd.Max(Math.Abs), diff = 0;
            for (int i = 0; i < w.Rows; i++) diff = Math.Max(diff, Math.Abs(yg[i] - yd[i]));
            var t = new List<double>[] { [], [], [], [] };
            for (int round = 0; round < rounds; round++)
                for (int k = 0; k < runs.Length; k++)
                {
                    int i = (k + round) % runs.Length; // rotate the order so no kernel always runs first
                    double t0 = ThreadCpu.Seconds();
                    for (int rep = 0; rep < reps; rep++) runs[i]();
                    t[i].Add((ThreadCpu.Seconds() - t0) / reps);
                }
            return (Median(t[0]), Median(t[1]), Median(t[2]), Median(t[3]), gblob.Length, diff / maxY);
        }
        finally { NativeMemory.AlignedFree(gdata); NativeMemory.AlignedFree(bdata); }
    }

    static double Median(List<double> v)
    {
        var s = v.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    static string Load() => File.Exists("/proc/loadavg") ? string.Join(", ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    static string Cpu()
    {
        if (!File.Exists("/proc/cpuinfo")) return "unknown";
        var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
        return line is null ? "unknown" : line[(line.IndexOf(':') + 1)..].Trim();
    }
}
