// Kernel benchmark: per thread, weight GB/s of Pare's matrix-vector kernel and of llama.cpp's own vec_dot kernels
// (exported by the native CPU library that LLamaSharp.Backend.Cpu ships), on the same bytes, in one process,
// alternating, for a matrix resident in L2 and one streaming from DRAM. Medians of the rounds.
//
//   dotnet run -c Release --project benchmarks/Pare.KernelBench -- [--types Q8_0,F16,Q4_K,Q6_K] [--rounds 9]
//       [--cols 2048] [--l2-kb 512] [--dram-mb 512]
//   dotnet run -c Release --project benchmarks/Pare.KernelBench -- threads MODEL.gguf [--rounds 9] [--decode 64]
//       (whole-model decode with 1 and with 2 threads, alternating in one process: does the second thread help?)
//   dotnet run -c Release --project benchmarks/Pare.KernelBench -- sparse [--types F16,Q8_0] [--sparsity 0.5,0.7]
//       (compact sparse decode kernel vs llama.cpp's and Pare's dense kernels on the same pruned matrix; SparseBench.cs)
//   dotnet run -c Release --project benchmarks/Pare.KernelBench -- rowgroup [--types F16,Q8_0] [--sparsity 0.5,0.7] [--groups 4,8]
//       (row-group compact decode kernel vs llama.cpp's dense, Pare's dense and the bitmask kernels; RowGroupBench.cs)
//   dotnet run -c Release --project benchmarks/Pare.KernelBench -- expand-parts [--rounds 7] [--sparsity 0.5]
//       (the compact F16 decode loop with and without its vpexpandw: where its time goes; ExpandParts.cs)
//   dotnet run -c Release --project benchmarks/Pare.KernelBench -- rows [--contexts 16384] [--budget 2048] [--kv-heads 8] [--threads 2] [--reps 20]
//       (TokenSelect's attention over its selected rows vs streaming's contiguous positions and full attention; RowsBench.cs)
//
// llama.cpp side, as its mul_mat does for one token: x is converted once per product with
// ggml_get_type_traits_cpu(type)->from_float (to Q8_0 / F16 / Q8_K), then vec_dot is called once per row (nrc = 1).
// Pare side: MatMul.MatVec(w, x, y, threads: 1), which also rounds x once per product. Both on one thread.
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Pare.Kernels;
using Pare.Tensors;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
if (args.Length > 0 && args[0] == "threads") return ThreadScaling.Run(args[1..]);
if (args.Length > 0 && args[0] == "sparse") return SparseBench.Run(args[1..]);
if (args.Length > 0 && args[0] == "rowgroup") return RowGroupBench.Run(args[1..]);
if (args.Length > 0 && args[0] == "expand-parts") return ExpandParts.Run(args[1..]);
if (args.Length > 0 && args[0] == "subnormals") return Denorm.Run(args[1..]);
if (args.Length > 0 && args[0] == "rows") return RowsBench.Run(args[1..]);
var opt = Options.Parse(args);
if (opt is null) return 1;

var ggml = Ggml.Load();
Console.WriteLine($"# Pare vs llama.cpp kernels, one thread ({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC)");
Console.WriteLine();
Console.WriteLine($"CPU: {CpuModel()}, {Environment.ProcessorCount} logical CPUs; llama.cpp library: {ggml.Path}");
Console.WriteLine($"Pare ISA paths: {MatMul.DescribeIsa()}");
Console.WriteLine($"Load average at start (1, 5, 15 min): {LoadAverage()}");
Console.WriteLine($"Columns {opt.Cols}; {opt.Rounds} alternating rounds, medians; GB/s = weight bytes / thread CPU time per product (x rounding included).");
Console.WriteLine();
Console.WriteLine("| format | where | matrix MB | Pare GB/s | llama.cpp GB/s | ratio | max rel. diff of y |");
Console.WriteLine("|---|---|---|---|---|---|---|");
foreach (var type in opt.Types)
    foreach (var (where, bytes) in new[] { ("L2", opt.L2Kb * 1024L), ("DRAM", opt.DramMb * 1024L * 1024) })
    {
        long rowBytes = GgmlTypeInfo.RowBytes(type, opt.Cols);
        int rows = (int)Math.Max(4, bytes / rowBytes);
        using var m = new RandomMatrix(type, rows, opt.Cols, seed: 7);
        var r = Measure(ggml, m, opt.Rounds, targetBytesPerRound: 256L << 20);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {type} | {where} | {m.Bytes / 1e6:F1} | {r.Pare:F1} | {r.Llama:F1} | {r.Pare / r.Llama:F2}x | {r.MaxRelDiff:E1} |"));
    }
Console.WriteLine();
Console.WriteLine($"Load average at end (1, 5, 15 min): {LoadAverage()}");
return 0;

static unsafe (double Pare, double Llama, double MaxRelDiff) Measure(Ggml ggml, RandomMatrix m, int rounds, long targetBytesPerRound)
{
    var w = m.Matrix;
    var yp = new float[w.Rows];
    var yl = new float[w.Rows];
    var traits = ggml.Traits(w.Type);
    // x goes to the kernel's vec_dot_type (Q8_0, F16, Q8_K) with that type's from_float, as ggml's mul_mat does.
    var fromFloat = ggml.Traits((GgmlType)traits.VecDotType, needVecDot: false).FromFloat;
    var xq = new byte[ggml.ActivationBytes(traits.VecDotType, w.Cols)];
    int reps = (int)Math.Max(1, targetBytesPerRound / m.Bytes);

    void RunPare() => MatMul.MatVec(w, m.X, yp, 1);
    unsafe void RunLlama()
    {
        fixed (float* px = m.X, py = yl)
        fixed (byte* pq = xq)
        {
            fromFloat(px, pq, w.Cols);
            byte* pw = (byte*)w.Data;
            for (int r = 0; r < w.Rows; r++) traits.VecDot(w.Cols, py + r, 0, pw + (long)r * w.RowBytes, 0, pq, 0, 1);
        }
    }

    RunPare(); RunLlama(); RunPare(); RunLlama(); // JIT, page-in, warm caches
    double maxY = yl.Max(Math.Abs), diff = 0;
    for (int i = 0; i < w.Rows; i++) diff = Math.Max(diff, Math.Abs(yp[i] - yl[i]));
    var tp = new List<double>(); var tl = new List<double>();
    for (int round = 0; round < rounds; round++)
    {
        // Alternate which goes first so neither always gets the warmer cache or the quieter moment.
        if (round % 2 == 0) { tp.Add(Time(RunPare, reps)); tl.Add(Time(RunLlama, reps)); }
        else { tl.Add(Time(RunLlama, reps)); tp.Add(Time(RunPare, reps)); }
    }
    return (m.Bytes / Median(tp) / 1e9, m.Bytes / Median(tl) / 1e9, diff / maxY);
}

// CPU time of this thread, not wall time: on a shared machine the thread is descheduled at times, and wall time
// would count that against whichever kernel was running. (Memory bandwidth taken by other processes still counts.)
static double Time(Action a, int reps)
{
    double t0 = ThreadCpu.Seconds();
    for (int i = 0; i < reps; i++) a();
    return (ThreadCpu.Seconds() - t0) / reps;
}

static double Median(List<double> v)
{
    var s = v.Order().ToArray();
    return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
}

static string LoadAverage() =>
    File.Exists("/proc/loadavg") ? string.Join(", ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

static string CpuModel()
{
    if (!File.Exists("/proc/cpuinfo")) return "unknown";
    var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
    return line is null ? "unknown" : line[(line.IndexOf(':') + 1)..].Trim();
}

static class ThreadCpu
{
    [StructLayout(LayoutKind.Sequential)]
    struct Timespec { public long Sec, Nsec; }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    static extern int ClockGetTime(int clock, out Timespec t);

    const int ClockThreadCpuTime = 3;

    public static double Seconds()
    {
        if (!OperatingSystem.IsLinux()) return Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;
        ClockGetTime(ClockThreadCpuTime, out var t);
        return t.Sec + t.Nsec * 1e-9;
    }
}

sealed record Options(GgmlType[] Types, int Rounds, int Cols, long L2Kb, long DramMb)
{
    public static Options? Parse(string[] args)
    {
        var o = new Options([GgmlType.Q8_0, GgmlType.F16, GgmlType.Q4_K, GgmlType.Q6_K], 9, 2048, 512, 512);
        try
        {
            for (int i = 0; i < args.Length; i++)
            {
                string v = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"{args[i]} needs a value");
                o = args[i] switch
                {
                    "--types" => o with { Types = [.. v.Split(',').Select(Enum.Parse<GgmlType>)] },
                    "--rounds" => o with { Rounds = int.Parse(v, CultureInfo.InvariantCulture) },
                    "--cols" => o with { Cols = int.Parse(v, CultureInfo.InvariantCulture) },
                    "--l2-kb" => o with { L2Kb = long.Parse(v, CultureInfo.InvariantCulture) },
                    "--dram-mb" => o with { DramMb = long.Parse(v, CultureInfo.InvariantCulture) },
                    _ => throw new ArgumentException($"unknown option {args[i]}"),
                };
                i++;
            }
            if (o.Cols % 256 != 0 || o.Cols <= 0) throw new ArgumentException("--cols must be a positive multiple of 256");
            if (o.Rounds < 1 || o.L2Kb < 1 || o.DramMb < 1) throw new ArgumentException("--rounds, --l2-kb and --dram-mb must be positive");
            foreach (var t in o.Types)
                if (t is not (GgmlType.Q8_0 or GgmlType.F16 or GgmlType.Q4_K or GgmlType.Q6_K or GgmlType.Q4_0 or GgmlType.F32 or GgmlType.BF16))
                    throw new ArgumentException($"type {t} is not benchmarked");
            return o;
        }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
        {
            Console.Error.WriteLine($"kernel-bench: error: {e.Message}");
            return null;
        }
    }
}

/// <summary>
/// A matrix of random but valid blocks (scales set to small normal halves, quants random bytes), made by tiling
/// 4 MB of random rows; both engines read the same bytes.
/// </summary>
sealed unsafe class RandomMatrix : IDisposable
{
    public RandomMatrix(GgmlType type, int rows, int cols, int seed)
    {
        var rng = new Random(seed);
        long rowBytes = GgmlTypeInfo.RowBytes(type, cols);
        Bytes = rowBytes * rows;
        _data = (byte*)NativeMemory.AlignedAlloc((nuint)Bytes, 64);
        int srcRows = (int)Math.Min(rows, Math.Max(1, (4 << 20) / rowBytes));
        var src = new byte[srcRows * rowBytes];
        rng.NextBytes(src);
        for (int r = 0; r < srcRows; r++) FixRow(type, src.AsSpan((int)(r * rowBytes), (int)rowBytes), rng);
        for (int r = 0; r < rows; r++)
            src.AsSpan((int)(r % srcRows * rowBytes), (int)rowBytes).CopyTo(new Span<byte>(_data + r * rowBytes, (int)rowBytes));
        Matrix = new WeightMatrix($"bench_{type}", type, rows, cols, (nint)_data, Bytes);
        X = new float[cols];
        for (int i = 0; i < cols; i++) X[i] = (float)(rng.NextDouble() - 0.5);
    }

    static void FixRow(GgmlType type, Span<byte> row, Random rng)
    {
        static ushort Half(Random rng, double lo, double hi) => BitConverter.HalfToUInt16Bits((Half)(lo + rng.NextDouble() * (hi - lo)));
        static void Put(Span<byte> row, int offset, ushort h) => MemoryMarshal.Write(row[offset..], h);
        switch (type)
        {
            case GgmlType.F32:
                for (int i = 0; i < row.Length; i += 4) MemoryMarshal.Write(row[i..], (float)(rng.NextDouble() - 0.5) * 0.1f);
                break;
            case GgmlType.F16:
                for (int i = 0; i < row.Length; i += 2) Put(row, i, Half(rng, -0.05, 0.05));
                break;
            case GgmlType.BF16:
                for (int i = 0; i < row.Length; i += 2)
                    MemoryMarshal.Write(row[i..], (ushort)(BitConverter.SingleToUInt32Bits((float)(rng.NextDouble() - 0.5) * 0.1f) >> 16));
                break;
            case GgmlType.Q8_0:
            case GgmlType.Q4_0:
                int bb = type == GgmlType.Q8_0 ? 34 : 18;
                for (int b = 0; b < row.Length; b += bb) Put(row, b, Half(rng, 1e-3, 2e-3));
                break;
            case GgmlType.Q4_K: // d, dmin, scales[12], qs[128]
                for (int b = 0; b < row.Length; b += 144) { Put(row, b, Half(rng, 1e-3, 2e-3)); Put(row, b + 2, Half(rng, 1e-4, 2e-4)); }
                break;
            case GgmlType.Q6_K: // ql[128], qh[64], scales[16], d
                for (int b = 0; b < row.Length; b += 210) Put(row, b + 208, Half(rng, 1e-3, 2e-3));
                break;
            default: throw new NotSupportedException(type.ToString());
        }
    }

    readonly byte* _data;
    public WeightMatrix Matrix { get; }
    public long Bytes { get; }
    public float[] X { get; }

    public void Dispose() => NativeMemory.AlignedFree(_data);
}

/// <summary>llama.cpp's CPU kernels, called directly from its native library (libggml-cpu.so).</summary>
sealed unsafe class Ggml
{
    public required string Path { get; init; }
    public required delegate* unmanaged<int, nint> GetTraits { get; init; }
    public required nint Library { get; init; }

    /// <summary>The exported kernel each benchmarked type's traits must point to (checked, so the names in the docs hold).</summary>
    static string? ExportName(GgmlType type) => type switch
    {
        GgmlType.Q8_0 => "ggml_vec_dot_q8_0_q8_0",
        GgmlType.F16 => "ggml_vec_dot_f16",
        GgmlType.Q4_K => "ggml_vec_dot_q4_K_q8_K",
        GgmlType.Q6_K => "ggml_vec_dot_q6_K_q8_K",
        GgmlType.Q4_0 => "ggml_vec_dot_q4_0_q8_0",
        GgmlType.F32 => "ggml_vec_dot_f32",
        GgmlType.BF16 => "ggml_vec_dot_bf16",
        _ => null,
    };

    public readonly struct TypeTraits(
        delegate* unmanaged<float*, byte*, long, void> fromFloat,
        delegate* unmanaged<int, float*, nuint, byte*, nuint, byte*, nuint, int, void> vecDot,
        int vecDotType)
    {
        public delegate* unmanaged<float*, byte*, long, void> FromFloat { get; } = fromFloat;
        public delegate* unmanaged<int, float*, nuint, byte*, nuint, byte*, nuint, int, void> VecDot { get; } = vecDot;
        public int VecDotType { get; } = vecDotType;
    }

    /// <summary>ggml's struct ggml_type_traits_cpu { from_float; vec_dot; enum vec_dot_type; int64 nrows; }.</summary>
    public TypeTraits Traits(GgmlType type, bool needVecDot = true)
    {
        nint p = GetTraits((int)type);
        if (p == 0) throw new InvalidOperationException($"ggml has no CPU traits for {type}");
        var t = new TypeTraits(
            (delegate* unmanaged<float*, byte*, long, void>)*(nint*)p,
            (delegate* unmanaged<int, float*, nuint, byte*, nuint, byte*, nuint, int, void>)*(nint*)(p + 8),
            *(int*)(p + 16));
        if (t.FromFloat == null) throw new InvalidOperationException($"ggml has no from_float for {type}");
        if (needVecDot && t.VecDot == null) throw new InvalidOperationException($"ggml has no vec_dot for {type}");
        if (ExportName(type) is { } name && NativeLibrary.TryGetExport(Library, name, out nint f) && f != (nint)t.VecDot)
            throw new InvalidOperationException($"ggml's vec_dot for {type} is not its exported {name}");
        return t;
    }

    /// <summary>Bytes of one activation row of cols values in ggml's vec_dot_type (Q8_0, F16, Q8_K, F32, BF16).</summary>
    public long ActivationBytes(int vecDotType, int cols) => vecDotType switch
    {
        0 => cols * 4L,          // F32
        1 or 30 => cols * 2L,    // F16, BF16
        8 => cols / 32 * 34L,    // Q8_0
        15 => cols / 256 * 292L, // Q8_K: float d, int8 qs[256], int16 bsums[16]
        _ => throw new NotSupportedException($"ggml vec_dot_type {vecDotType}"),
    };

    public static Ggml Load()
    {
        // The package copies one build per ISA level under runtimes/; take the best this CPU runs.
        string root = System.IO.Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native");
        string level = System.Runtime.Intrinsics.X86.Avx512F.IsSupported ? "avx512"
            : System.Runtime.Intrinsics.X86.Avx2.IsSupported ? "avx2" : "noavx";
        string dir = System.IO.Path.Combine(root, level);
        // libggml-cpu.so needs libggml-base.so: load it first by path so the loader finds it by name.
        NativeLibrary.Load(System.IO.Path.Combine(dir, "libggml-base.so"));
        nint cpu = NativeLibrary.Load(System.IO.Path.Combine(dir, "libggml-cpu.so"));
        ((delegate* unmanaged<void>)NativeLibrary.GetExport(cpu, "ggml_cpu_init"))();
        return new Ggml
        {
            Path = System.IO.Path.Combine(dir, "libggml-cpu.so"),
            GetTraits = (delegate* unmanaged<int, nint>)NativeLibrary.GetExport(cpu, "ggml_get_type_traits_cpu"),
            Library = cpu,
        };
    }
}
