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
        GgmlType[] types = [GgmlType.F16, GgmlType.Q8_0];
        double[] sparsities = [0.5, 0.7];
        int rounds = 9, cols = 2048;
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
                if (t is not (GgmlType.F16 or GgmlType.Q8_0)) throw new ArgumentException($"type {t}: sparse mode takes F16 and Q8_0");
            foreach (var s in sparsities)
                if (!(s > 0 && s < 1)) throw new ArgumentException("--sparsity values must be in (0, 1)");
        }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
        {
            Console.Error.WriteLine($"kernel-bench: error: {e.Message}");
            return 1;
        }

        var ggml = Ggml.Load();
        Console.WriteLine($"# Compact sparse vs dense decode kernels, one thread ({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC)");
        Console.WriteLine();
        Console.WriteLine($"CPU: {Cpu()}, {Environment.ProcessorCount} logical CPUs; Pare ISA paths: {MatMul.DescribeIsa()}");
        Console.WriteLine($"Load average at start (1, 5, 15 min): {Load()}");
        Console.WriteLine($"Columns {cols}; {rounds} alternating rounds, medians of thread CPU time per product; speedup = dense time / compact time.");
        Console.WriteLine();
        Console.WriteLine("| format | where | sparsity | dense MB | compact MB | Pare compact GB/s (compact bytes) | vs llama.cpp dense | vs Pare dense | max rel. diff |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var type in types)
            foreach (var (where, bytes) in new[] { ("L2", l2Kb * 1024L), ("DRAM", dramMb * 1024L * 1024) })
                foreach (var sp in sparsities)
                {
                    long rowBytes = GgmlTypeInfo.RowBytes(type, cols);
                    int rows = (int)Math.Max(4, bytes / rowBytes);
                    using var m = new RandomMatrix(type, rows, cols, seed: 7);
                    Prune(m, type, sp, seed: 11);
                    var r = Measure(ggml, m, sp, rounds);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"| {type} | {where} | {sp:P0} | {m.Bytes / 1e6:F1} | {r.CompactBytes / 1e6:F1} | {r.CompactBytes / r.Compact / 1e9:F1} | {r.Llama / r.Compact:F2}x | {r.PareDense / r.Compact:F2}x | {r.MaxRelDiff:E1} |"));
                }
        Console.WriteLine();
        Console.WriteLine($"Load average at end (1, 5, 15 min): {Load()}");
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
        byte* sdata = (byte*)NativeMemory.AlignedAlloc((nuint)blob.Length, 64);
        try
        {
            blob.AsSpan().CopyTo(new Span<byte>(sdata, blob.Length));
            var sparse = SparseMatrix.Open("bench_sparse", (nint)sdata, blob.Length, w.Rows, w.Cols);
            var ws = new WeightMatrix("bench_sparse", w.Rows, w.Cols, sparse);
            var ys = new float[w.Rows]; var yd = new float[w.Rows]; var yl = new float[w.Rows];
            var traits = ggml.Traits(w.Type);
            var fromFloat = ggml.Traits((GgmlType)traits.VecDotType, needVecDot: false).FromFloat;
            var xq = new byte[ggml.ActivationBytes(traits.VecDotType, w.Cols)];
            int reps = (int)Math.Max(1, (256L << 20) / m.Bytes);
            void RunCompact() => MatMul.MatVec(ws, m.X, ys, 1);
            void RunDense() => MatMul.MatVec(w, m.X, yd, 1);
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
            Action[] runs = [RunCompact, RunLlama, RunDense];
            foreach (var a in runs) { a(); a(); }
            double maxY = yd.Max(Math.Abs), diff = 0;
            for (int i = 0; i < w.Rows; i++) diff = Math.Max(diff, Math.Abs(ys[i] - yd[i]));
            var t = new List<double>[] { [], [], [] };
            for (int round = 0; round < rounds; round++)
                for (int k = 0; k < 3; k++)
                {
                    int i = (k + round) % 3; // rotate the order so no kernel always runs first
                    double t0 = ThreadCpu.Seconds();
                    for (int rep = 0; rep < reps; rep++) runs[i]();
                    t[i].Add((ThreadCpu.Seconds() - t0) / reps);
                }
            return (Median(t[0]), Median(t[1]), Median(t[2]), blob.Length, diff / maxY);
        }
        finally { NativeMemory.AlignedFree(sdata); }
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
