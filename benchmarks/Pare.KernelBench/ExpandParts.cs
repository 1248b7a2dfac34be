using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

/// <summary>
/// Where the compact sparse F16 decode kernel's time goes (issue #12): the two-row loop of
/// <c>SparseMatMul.DotF16x2</c> copied here three times on the same L1/L2-resident rows, differing only in how a block's
/// halves reach a register: (a) the real thing, mask predicate + vpexpandw of the packed values; (b) the predicate and
/// a zero-masked move instead of the expansion (wrong numbers, the expansion's cost removed); (c) a plain load (the dense
/// kernel's work: conversion, FMAs, loads, pointer steps). Thread CPU time per row and 32-column block, medians.
///
///   dotnet benchmarks/Pare.KernelBench/bin/Release/net10.0/Pare.KernelBench.dll expand-parts [--rounds 7] [--sparsity 0.5]
/// </summary>
static unsafe class ExpandParts
{
    public static int Run(string[] args)
    {
        int rounds = 7;
        double sparsity = 0.5;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            if (args[i] == "--rounds" && int.TryParse(args[i + 1], CultureInfo.InvariantCulture, out int r) && r > 0) rounds = r;
            else if (args[i] == "--sparsity" && double.TryParse(args[i + 1], CultureInfo.InvariantCulture, out double s) && s >= 0 && s < 1) sparsity = s;
            else { Console.Error.WriteLine($"kernel-bench: error: bad option {args[i]} {args[i + 1]}"); return 1; }
        }
        if (args.Length % 2 != 0) { Console.Error.WriteLine("kernel-bench: error: every option needs a value"); return 1; }
        if (!(Avx512Vbmi2.IsSupported && Avx512BW.IsSupported)) { Console.Error.WriteLine("kernel-bench: error: needs AVX-512 VBMI2"); return 1; }
        const int nb = 64, rows = 64; // 2048 columns, 64 rows: 256 KB of halves at most
        var rng = new Random(1);
        uint* masks = (uint*)NativeMemory.AlignedAlloc(rows * nb * 4, 64);
        ushort* vals = (ushort*)NativeMemory.AlignedAlloc((nuint)(rows * nb * 64 + 128), 64);
        float* x = (float*)NativeMemory.AlignedAlloc(nb * 32 * 4, 64);
        long[] rowStart = new long[rows + 1];
        for (int r = 0; r < rows; r++)
        {
            long n = 0;
            for (int b = 0; b < nb; b++)
            {
                uint m = 0;
                for (int c = 0; c < 32; c++) if (rng.NextDouble() >= sparsity) m |= 1u << c;
                masks[r * nb + b] = m;
                n += BitOperations.PopCount(m);
            }
            rowStart[r + 1] = rowStart[r] + n;
        }
        for (int i = 0; i < rows * nb * 32 + 64; i++) vals[i] = (ushort)rng.Next(0x3000, 0x3C00); // normal halves 0.125-1
        for (int i = 0; i < nb * 32; i++) x[i] = (float)rng.NextDouble();
        float* sums = stackalloc float[2];
        var t = new List<double>[] { [], [], [] };
        double check = 0;
        for (int round = 0; round < rounds; round++)
            for (int mode = 0; mode < 3; mode++)
            {
                const int reps = 4000;
                double t0 = ThreadCpu.Seconds();
                for (int rep = 0; rep < reps; rep++)
                    for (int r = 0; r < rows; r += 2)
                    {
                        // (c) reads dense rows (32 halves per block); (a) and (b) the packed rows
                        byte* v0 = mode == 2 ? (byte*)(vals + (long)r * nb * 32) : (byte*)(vals + rowStart[r]);
                        byte* v1 = mode == 2 ? v0 + nb * 64 : (byte*)(vals + rowStart[r + 1]);
                        Dot(masks + r * nb, masks + (r + 1) * nb, v0, v1, nb, x, sums, mode);
                        check += sums[0];
                    }
                t[mode].Add((ThreadCpu.Seconds() - t0) / reps / (rows * nb) * 1e9);
            }
        double a = Median(t[0]), b2 = Median(t[1]), c2 = Median(t[2]);
        Console.WriteLine($"# Compact F16 decode loop, where the time goes ({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC), sparsity {sparsity:P0}, {rounds} rounds, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
        Console.WriteLine();
        Console.WriteLine("| loop | CPU ns per row and 32-column block | share of the real loop |");
        Console.WriteLine("|---|---|---|");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| (a) predicate + vpexpandw (the kernel) | {a:F2} | 100 % |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| (b) predicate + masked move (no expansion) | {b2:F2} | {b2 / a:P0} |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| (c) plain load (the dense kernel's work) | {c2:F2} | {c2 / a:P0} |"));
        if (double.IsNaN(check)) Console.WriteLine("(NaN)");
        return 0;
    }

    static double Median(List<double> v) { var s = v.Order().ToArray(); return s[s.Length / 2]; }

    static readonly Vector512<ushort> TestF16 = Vector512.Create(
        (ushort)1, 1, 2, 2, 4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256, 256, 512, 512, 1024, 1024, 2048, 2048,
        4096, 4096, 8192, 8192, 16384, 16384, 32768, 32768);

    [MethodImpl(MethodImplOptions.NoInlining)]
    static void Dot(uint* k0, uint* k1, byte* v0, byte* v1, int nb, float* x, float* sums, int mode)
    {
        var test = TestF16;
        var evenMask = Vector512.Create(unchecked((int)0x8FFFFFFF));
        var oddMask = Vector512.Create(unchecked((int)0x8FFFE000));
        var evenShift = Vector512.Create(1 << 13).AsInt16();
        Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default;
        for (int b = 0; b < nb; b++)
        {
            var xe = Vector512.Load(x + b * 32);
            var xo = Vector512.Load(x + b * 32 + 16);
            Vector512<int> h0, h1;
            if (mode == 2)
            {
                h0 = Vector512.Load((int*)v0); h1 = Vector512.Load((int*)v1);
                v0 += 64; v1 += 64;
            }
            else
            {
                var p0 = Vector512.Equals(Vector512.Create(k0[b]).AsUInt16() & test, test);
                var p1 = Vector512.Equals(Vector512.Create(k1[b]).AsUInt16() & test, test);
                if (mode == 0)
                {
                    h0 = Avx512Vbmi2.Expand(Vector512<ushort>.Zero, p0, Vector512.Load((ushort*)v0)).AsInt32();
                    h1 = Avx512Vbmi2.Expand(Vector512<ushort>.Zero, p1, Vector512.Load((ushort*)v1)).AsInt32();
                }
                else
                {
                    h0 = Vector512.ConditionalSelect(p0, Vector512.Load((ushort*)v0), Vector512<ushort>.Zero).AsInt32();
                    h1 = Vector512.ConditionalSelect(p1, Vector512.Load((ushort*)v1), Vector512<ushort>.Zero).AsInt32();
                }
                v0 += BitOperations.PopCount(Volatile.Read(ref k0[b])) * 2;
                v1 += BitOperations.PopCount(Volatile.Read(ref k1[b])) * 2;
            }
            a0 = Vector512.FusedMultiplyAdd((Avx512BW.MultiplyAddAdjacent(h0.AsInt16(), evenShift) & evenMask).AsSingle(), xe, a0);
            b0 = Vector512.FusedMultiplyAdd((Vector512.ShiftRightArithmetic(h0, 3) & oddMask).AsSingle(), xo, b0);
            a1 = Vector512.FusedMultiplyAdd((Avx512BW.MultiplyAddAdjacent(h1.AsInt16(), evenShift) & evenMask).AsSingle(), xe, a1);
            b1 = Vector512.FusedMultiplyAdd((Vector512.ShiftRightArithmetic(h1, 3) & oddMask).AsSingle(), xo, b1);
        }
        sums[0] = Vector512.Sum(a0 + b0);
        sums[1] = Vector512.Sum(a1 + b1);
    }
}
