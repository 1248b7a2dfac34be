using System.Globalization;
using System.Runtime.InteropServices;
using Pare.Kernels;
using Pare.Tensors;

/// <summary>
/// Options shared by the `sparse` and `rowgroup` modes: weight types (F16, Q8_0; default both), sparsities in (0, 1)
/// (default 0.5, 0.7), alternating timing rounds (default per mode), columns (a positive multiple of 256; default 2048),
/// and the L2-sized (default 512 KB) and DRAM-sized (default 256 MB) matrix footprints.
/// </summary>
sealed record SparseBenchArgs(GgmlType[] Types, double[] Sparsities, int Rounds, int Cols, long L2Kb, long DramMb)
{
    /// <summary>The two footprints the modes measure: ("L2", bytes) and ("DRAM", bytes).</summary>
    public (string Where, long Bytes)[] Sizes => [("L2", L2Kb * 1024L), ("DRAM", DramMb * 1024L * 1024)];

    /// <summary>
    /// Parses <paramref name="args"/> (pairs of option and value). <paramref name="extra"/> takes a mode's own options
    /// (returns false for one it does not know) and <paramref name="validate"/> checks them after parsing; both throw
    /// <see cref="ArgumentException"/> (or a parse exception) on bad input. On bad input prints one
    /// `kernel-bench: error: ...` line and returns null.
    /// </summary>
    public static SparseBenchArgs? Parse(string[] args, string mode, int defaultRounds,
        Func<string, string, bool>? extra = null, Action? validate = null)
    {
        GgmlType[] types = [GgmlType.F16, GgmlType.Q8_0];
        double[] sparsities = [0.5, 0.7];
        int rounds = defaultRounds, cols = 2048;
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
                    default:
                        if (extra is null || !extra(args[i], v)) throw new ArgumentException($"unknown option {args[i]}");
                        break;
                }
            }
            if (cols % 256 != 0 || cols <= 0) throw new ArgumentException("--cols must be a positive multiple of 256");
            if (rounds < 1 || l2Kb < 1 || dramMb < 1) throw new ArgumentException("--rounds, --l2-kb and --dram-mb must be positive");
            foreach (var t in types)
                if (t is not (GgmlType.F16 or GgmlType.Q8_0)) throw new ArgumentException($"type {t}: {mode} mode takes F16 and Q8_0");
            foreach (var s in sparsities)
                if (!(s > 0 && s < 1)) throw new ArgumentException("--sparsity values must be in (0, 1)");
            validate?.Invoke();
        }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
        {
            Console.Error.WriteLine($"kernel-bench: error: {e.Message}");
            return null;
        }
        return new SparseBenchArgs(types, sparsities, rounds, cols, l2Kb, dramMb);
    }

    /// <summary>Prints the title, machine state and settings lines, then the markdown table header for <paramref name="columns"/>.</summary>
    public void PrintHeader(string title, params string[] columns)
    {
        Console.WriteLine($"# {title}, one thread ({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC)");
        Console.WriteLine();
        Console.WriteLine($"CPU: {SparseBenchRuns.Cpu()}, {Environment.ProcessorCount} logical CPUs; Pare ISA paths: {MatMul.DescribeIsa()}");
        Console.WriteLine($"Load average at start (1, 5, 15 min): {SparseBenchRuns.Load()}");
        Console.WriteLine($"Columns {Cols}; {Rounds} alternating rounds, medians of thread CPU time per product; speedup = dense time / compact time.");
        Console.WriteLine();
        Console.WriteLine($"| {string.Join(" | ", columns)} |");
        Console.WriteLine($"|{string.Concat(Enumerable.Repeat("---|", columns.Length))}");
    }

    /// <summary>Prints the closing load-average line.</summary>
    public static void PrintFooter()
    {
        Console.WriteLine();
        Console.WriteLine($"Load average at end (1, 5, 15 min): {SparseBenchRuns.Load()}");
    }
}

/// <summary>Measurement helpers shared by the `sparse` and `rowgroup` modes.</summary>
static unsafe class SparseBenchRuns
{
    /// <summary>A 64-byte aligned native copy of <paramref name="blob"/>; free it with <see cref="NativeMemory.AlignedFree"/>.</summary>
    public static byte* AlignedCopy(byte[] blob)
    {
        byte* data = (byte*)NativeMemory.AlignedAlloc((nuint)blob.Length, 64);
        blob.AsSpan().CopyTo(new Span<byte>(data, blob.Length));
        return data;
    }

    /// <summary>llama.cpp's dense product of <paramref name="w"/> with <paramref name="x"/> into <paramref name="y"/>: quantize x, then vec_dot per row.</summary>
    public static Action LlamaDense(Ggml ggml, WeightMatrix w, float[] x, float[] y)
    {
        var traits = ggml.Traits(w.Type);
        var fromFloat = ggml.Traits((GgmlType)traits.VecDotType, needVecDot: false).FromFloat;
        var xq = new byte[ggml.ActivationBytes(traits.VecDotType, w.Cols)];
        return () =>
        {
            fixed (float* px = x, py = y)
            fixed (byte* pq = xq)
            {
                fromFloat(px, pq, w.Cols);
                byte* pw = (byte*)w.Data;
                for (int r = 0; r < w.Rows; r++) traits.VecDot(w.Cols, py + r, 0, pw + (long)r * w.RowBytes, 0, pq, 0, 1);
            }
        };
    }

    /// <summary>Runs every kernel twice (warm-up).</summary>
    public static void Warm(Action[] runs)
    {
        foreach (var a in runs) { a(); a(); }
    }

    /// <summary>Largest |y - reference| over the largest |reference|.</summary>
    public static double MaxRelDiff(float[] y, float[] reference)
    {
        double maxY = reference.Max(Math.Abs), diff = 0;
        for (int i = 0; i < reference.Length; i++) diff = Math.Max(diff, Math.Abs(y[i] - reference[i]));
        return diff / maxY;
    }

    /// <summary>
    /// Median thread CPU seconds per call of each kernel over <paramref name="rounds"/> alternating rounds of
    /// <paramref name="reps"/> calls, the order rotated each round so no kernel always runs first.
    /// </summary>
    public static double[] Time(Action[] runs, int rounds, int reps)
    {
        var t = new List<double>[runs.Length];
        for (int i = 0; i < t.Length; i++) t[i] = [];
        for (int round = 0; round < rounds; round++)
            for (int k = 0; k < runs.Length; k++)
            {
                int i = (k + round) % runs.Length;
                double t0 = ThreadCpu.Seconds();
                for (int rep = 0; rep < reps; rep++) runs[i]();
                t[i].Add((ThreadCpu.Seconds() - t0) / reps);
            }
        return [.. t.Select(Median)];
    }

    static double Median(List<double> v)
    {
        var s = v.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    public static string Load() => File.Exists("/proc/loadavg") ? string.Join(", ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    public static string Cpu()
    {
        if (!File.Exists("/proc/cpuinfo")) return "unknown";
        var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
        return line is null ? "unknown" : line[(line.IndexOf(':') + 1)..].Trim();
    }
}
