using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pare.Kernels.Formats;

/// <summary>IEEE half floats.</summary>
internal static class F16Format
{
    public static void DequantRow(ReadOnlySpan<byte> src, Span<float> dst)
    {
        var h = MemoryMarshal.Cast<byte, ushort>(src);
        for (int i = 0; i < dst.Length; i++) dst[i] = Fp16.ToFloat(h[i]);
    }

    public static byte[] Quantize(ReadOnlySpan<float> src)
    {
        var dst = new byte[src.Length * 2];
        var h = MemoryMarshal.Cast<byte, ushort>(dst.AsSpan());
        for (int i = 0; i < src.Length; i++) h[i] = Fp16.FromFloat(src[i]);
        return dst;
    }
}

/// <summary>
/// F16 rows without F16C: each half becomes a float 2^-112 times too small,
/// and instead of multiplying every weight by 2^112, x is prescaled once per call by 2^s (chosen from max|x| so
/// it cannot overflow) and each sum rescaled by 2^(112-s). Power-of-two scalings are exact; only products below
/// ~2^-124 of the largest (which cannot matter to the sum) lose bits to underflow. Blocks of 32 halves holding a
/// subnormal take the exact conversion (<see cref="Fp16.ToFloatExact16"/>): they are found once per matrix
/// (<see cref="SubnormalMap"/>, cached on the matrix by the decode driver), not tested in the loop. Where float denormal
/// operands cost nothing (<see cref="DenormalsFree"/>: AMD), there is no map: subnormal halves become float denormals
/// that are exactly 2^-112 times their value, like every other half.
/// Even and odd halves are converted apart with two shifts and a mask each (<see cref="Even"/>, <see cref="Odd"/>).
/// Prep layout: x * 2^s, per full block of 32 columns the 16 even then the 16 odd ones ([32 nb, cols) in order);
/// [cols] = 2^(112-s).
/// </summary>
internal readonly unsafe struct F16Kernel : IRowKernel
{
    public static int PrepFloats(int cols) => cols + 1;

    public static void Prepare(float* x, int cols, float* prep)
    {
        // Vectorized: a scalar pass over x cost about a third of a product of an L2-resident 2048 x 5632 matrix.
        int v = cols & ~15;
        var vmax = Vector512<float>.Zero;
        for (int i = 0; i < v; i += 16) vmax = Vector512.Max(vmax, Vector512.Abs(Vector512.Load(x + i)));
        var m256 = Vector256.Max(vmax.GetLower(), vmax.GetUpper());
        var m128 = Vector128.Max(m256.GetLower(), m256.GetUpper());
        float maxAbs = MathF.Max(MathF.Max(m128[0], m128[1]), MathF.Max(m128[2], m128[3]));
        for (int i = v; i < cols; i++) maxAbs = MathF.Max(maxAbs, MathF.Abs(x[i]));
        // maxAbs < 2^k; put it at or below 2^120 so x * 2^s and the partial sums stay finite.
        int k = maxAbs == 0 ? 0 : Math.ILogB(maxAbs) + 1;
        int s = Math.Clamp(120 - k, 0, 127);
        float up = BitConverter.Int32BitsToSingle((127 + s) << 23);
        var upv = Vector512.Create(up);
        for (int i = 0; i < v; i += 16) (Vector512.Load(x + i) * upv).Store(prep + i);
        for (int i = v; i < cols; i++) prep[i] = x[i] * up;
        prep[cols] = BitConverter.Int32BitsToSingle((127 + 112 - s) << 23);
        // Per full block of 32: the 16 even columns, then the 16 odd ones (the kernels convert even and odd halves apart).
        var even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        var odd = even + Vector512<int>.One;
        for (int b = 0; b + 32 <= cols; b += 32)
        {
            var lo = Vector512.Load(prep + b);
            var hi = Vector512.Load(prep + b + 16);
            Avx512F.PermuteVar16x32x2(lo, even, hi).Store(prep + b);
            Avx512F.PermuteVar16x32x2(lo, odd, hi).Store(prep + b + 16);
        }
    }

    /// <summary>
    /// Whether any of 32 halves in each of the four rows is subnormal: the unscaled conversion would make it a float
    /// denormal, and a denormal operand costs a ~100-cycle microcode assist (measured: 20x slower on such data).
    /// (h &amp; 0x7FFF) - 1 is below 0x3FF exactly for subnormals; zeros wrap to 0xFFFF, so an unsigned min merges rows.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static bool AnySubnormal(ushort* w0, ushort* w1, ushort* w2, ushort* w3)
    {
        var magnitude = Vector512.Create((ushort)0x7FFF);
        var one = Vector512<ushort>.One;
        var m = Vector512.Min(Vector512.Min((Vector512.Load(w0) & magnitude) - one, (Vector512.Load(w1) & magnitude) - one),
                              Vector512.Min((Vector512.Load(w2) & magnitude) - one, (Vector512.Load(w3) & magnitude) - one));
        return Vector512.LessThanAny(m, Vector512.Create((ushort)0x3FF));
    }

    /// <summary>
    /// y[k] = dot(row k, x) for four rows, each row's sum independent of the others: the subnormal map of the four
    /// rows is computed here (<see cref="SubnormalMap"/>), then <see cref="Dot4Mapped"/>. The decode driver passes
    /// the matrix's cached map instead (<see cref="MatVecF16"/>).
    /// </summary>
    public static void Dot4(byte* r0, byte* r1, byte* r2, byte* r3, float* x, float* prep, int cols, float* y)
    {
        if (DenormalsFree) { Dot4Mapped(r0, r1, r2, r3, null, null, null, null, x, prep, cols, y); return; }
        int words = MapWords(cols);
        ulong* m = stackalloc ulong[4 * words];
        MapRow((ushort*)r0, cols, m); MapRow((ushort*)r1, cols, m + words);
        MapRow((ushort*)r2, cols, m + 2 * words); MapRow((ushort*)r3, cols, m + 3 * words);
        Dot4Mapped(r0, r1, r2, r3, m, m + words, m + 2 * words, m + 3 * words, x, prep, cols, y);
    }

    /// <summary>
    /// Whether float denormal operands cost nothing extra on this CPU, so subnormal halves can take the fast unscaled
    /// conversion (it turns them into float denormals, exactly 2^-112 times their value) and no subnormal map is needed.
    /// True on AMD (Zen 4 and later are the AMD CPUs with AVX-512: an FMA with denormal operands runs at full speed,
    /// measured on a Zen 4 EPYC: 55-57 GB/s in L2 with 0%, 0.3%, 3% and 100% subnormal halves); false elsewhere (Intel
    /// takes a microcode assist per denormal operand: ~20x slower on such data). Tests check both paths directly (<see cref="Dot4Mapped"/> with and without maps).
    /// </summary>
    internal static readonly bool DenormalsFree = IsAmd();

    static bool IsAmd()
    {
        if (!X86Base.IsSupported) return false;
        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        return ebx == 0x68747541 && edx == 0x69746E65 && ecx == 0x444D4163; // "Auth" "enti" "cAMD"
    }

    /// <summary>64-bit words of a row's subnormal map: one bit per full block of 32 halves.</summary>
    public static int MapWords(int cols) => (cols / 32 + 63) / 64;

    /// <summary>Sets bit b of the row's map when block b (halves 32b..32b+31) holds a subnormal half.</summary>
    public static void MapRow(ushort* h, int cols, ulong* map)
    {
        int nb = cols / 32;
        new Span<ulong>(map, MapWords(cols)).Clear();
        for (int b = 0; b < nb; b++)
            if (AnySubnormal(h + 32 * b, h + 32 * b, h + 32 * b, h + 32 * b)) map[b >> 6] |= 1ul << (b & 63);
    }

    /// <summary>
    /// The subnormal map of a whole matrix (rows x <see cref="MapWords"/> words), or null when it has no subnormal
    /// half at all. Scanning is one pass over the matrix; the decode driver caches the result on the matrix.
    /// </summary>
    public static ulong[]? SubnormalMap(byte* data, int rows, int cols, long rowBytes)
    {
        int words = MapWords(cols);
        var map = GC.AllocateArray<ulong>(checked(rows * words), pinned: true);
        bool any = false;
        fixed (ulong* m = map)
            for (int r = 0; r < rows; r++)
            {
                MapRow((ushort*)(data + r * rowBytes), cols, m + (long)r * words);
                for (int k = 0; k < words; k++) any |= m[(long)r * words + k] != 0;
            }
        return any ? map : null;
    }

    /// <summary>
    /// Four rows' dot products with their subnormal maps (<see cref="MapRow"/>): blocks of 32 halves whose bit is clear
    /// in all four maps take the fast unscaled conversion (one scalar test per block instead of a vector check of the
    /// halves); a block marked in some row takes, in each row separately, the exact conversion if that row's bit is
    /// set (so a row's sum depends only on the row). Null maps: no subnormal anywhere, no tests at all.
    /// </summary>
    public static void Dot4Mapped(byte* r0, byte* r1, byte* r2, byte* r3, ulong* m0, ulong* m1, ulong* m2, ulong* m3,
        float* x, float* prep, int cols, float* y)
    {
        int* w0 = (int*)r0, w1 = (int*)r1, w2 = (int*)r2, w3 = (int*)r3; // 16 ints = 32 halves per block
        float* xs = prep;
        // Even and odd halves of each row accumulate apart (x is split to match); e: the exact path, in x's own scale.
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
        Vector512<float> e0 = default, e1 = default, e2 = default, e3 = default;
        var evenMask = Vector512.Create(unchecked((int)0x8FFFFFFF));
        var oddMask = Vector512.Create(unchecked((int)0x8FFFE000));
        int nb = cols / 32;
        for (int k0 = 0; k0 < nb; k0 += 64)
        {
            int k1 = Math.Min(nb, k0 + 64);
            ulong any = m0 == null ? 0 : m0[k0 >> 6] | m1[k0 >> 6] | m2[k0 >> 6] | m3[k0 >> 6];
            for (int k = k0; k < k1; k++)
            {
                int i = 32 * k;
                if (((any >> (k & 63)) & 1) != 0)
                {
                    Mixed(w0 + 16 * k, x + i, xs + i, (m0[k >> 6] >> (k & 63) & 1) != 0, ref a0, ref b0, ref e0);
                    Mixed(w1 + 16 * k, x + i, xs + i, (m1[k >> 6] >> (k & 63) & 1) != 0, ref a1, ref b1, ref e1);
                    Mixed(w2 + 16 * k, x + i, xs + i, (m2[k >> 6] >> (k & 63) & 1) != 0, ref a2, ref b2, ref e2);
                    Mixed(w3 + 16 * k, x + i, xs + i, (m3[k >> 6] >> (k & 63) & 1) != 0, ref a3, ref b3, ref e3);
                    continue;
                }
                var xe = Vector512.Load(xs + i);
                var xo = Vector512.Load(xs + i + 16);
                var h0 = Vector512.Load(w0 + 16 * k); var h1 = Vector512.Load(w1 + 16 * k);
                var h2 = Vector512.Load(w2 + 16 * k); var h3 = Vector512.Load(w3 + 16 * k);
                a0 = Vector512.FusedMultiplyAdd(Even(h0, evenMask), xe, a0); b0 = Vector512.FusedMultiplyAdd(Odd(h0, oddMask), xo, b0);
                a1 = Vector512.FusedMultiplyAdd(Even(h1, evenMask), xe, a1); b1 = Vector512.FusedMultiplyAdd(Odd(h1, oddMask), xo, b1);
                a2 = Vector512.FusedMultiplyAdd(Even(h2, evenMask), xe, a2); b2 = Vector512.FusedMultiplyAdd(Odd(h2, oddMask), xo, b2);
                a3 = Vector512.FusedMultiplyAdd(Even(h3, evenMask), xe, a3); b3 = Vector512.FusedMultiplyAdd(Odd(h3, oddMask), xo, b3);
            }
        }
        float down = prep[cols];
        ushort* u0 = (ushort*)r0, u1 = (ushort*)r1, u2 = (ushort*)r2, u3 = (ushort*)r3;
        float s0 = Vector512.Sum(a0 + b0) * down + Vector512.Sum(e0), s1 = Vector512.Sum(a1 + b1) * down + Vector512.Sum(e1);
        float s2 = Vector512.Sum(a2 + b2) * down + Vector512.Sum(e2), s3 = Vector512.Sum(a3 + b3) * down + Vector512.Sum(e3);
        for (int i = 32 * nb; i < cols; i++)
        {
            s0 += Fp16.ToFloatFast(u0[i]) * x[i]; s1 += Fp16.ToFloatFast(u1[i]) * x[i];
            s2 += Fp16.ToFloatFast(u2[i]) * x[i]; s3 += Fp16.ToFloatFast(u3[i]) * x[i];
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
    }

    /// <summary>
    /// The even halves of 16 half pairs as floats 2^-112 times their values: the sign-extended half shifted left by 13
    /// puts sign, exponent and mantissa in float position (the mask clears the sign copies). The shift is a vpmaddwd by
    /// [2^13, 0] per lane (bit for bit the same as (h &lt;&lt; 16) >> 3, arithmetic), which runs on the multiply pipes and
    /// leaves the shift pipes to the odd halves (Zen 4, one thread, L2: 53.1 -> 59.3 GB/s, docs/benchmarks.md).
    /// No shuffle, against a sign-extending load (a shuffle-port operation) per 16 halves.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Even(Vector512<int> h, Vector512<int> evenMask) =>
        (Avx512BW.MultiplyAddAdjacent(h.AsInt16(), Vector512.Create(1 << 13).AsInt16()) & evenMask).AsSingle();

    /// <summary>The odd halves, as <see cref="Even"/> (the mask also clears the even half's bits shifted in below).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Odd(Vector512<int> h, Vector512<int> oddMask) => (Vector512.ShiftRightArithmetic(h, 3) & oddMask).AsSingle();

    /// <summary>One row's block of 32 in a block some row marked: exact into e if this row is marked, else the fast path into a, b.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Mixed(int* w, float* x, float* xs, bool marked, ref Vector512<float> a, ref Vector512<float> b, ref Vector512<float> e)
    {
        if (marked)
        {
            e = Vector512.FusedMultiplyAdd(Fp16.ToFloatExact16((ushort*)w), Vector512.Load(x), e);
            e = Vector512.FusedMultiplyAdd(Fp16.ToFloatExact16((ushort*)w + 16), Vector512.Load(x + 16), e);
        }
        else
        {
            var h = Vector512.Load(w);
            a = Vector512.FusedMultiplyAdd(Even(h, Vector512.Create(unchecked((int)0x8FFFFFFF))), Vector512.Load(xs), a);
            b = Vector512.FusedMultiplyAdd(Odd(h, Vector512.Create(unchecked((int)0x8FFFE000))), Vector512.Load(xs + 16), b);
        }
    }

    public static void DequantRow(byte* src, float* dst, int cols)
    {
        ushort* h = (ushort*)src;
        var scale = Vector512.Create(Fp16.Pow2_112);
        int i = 0;
        for (; i + 32 <= cols; i += 32)
        {
            if (!DenormalsFree && AnySubnormal(h + i, h + i, h + i, h + i))
            {
                Fp16.ToFloatExact16(h + i).Store(dst + i);
                Fp16.ToFloatExact16(h + i + 16).Store(dst + i + 16);
                continue;
            }
            (Fp16.ToFloatUnscaled16(h + i) * scale).Store(dst + i);
            (Fp16.ToFloatUnscaled16(h + i + 16) * scale).Store(dst + i + 16);
        }
        for (; i < cols; i++) dst[i] = Fp16.ToFloatFast(h[i]);
    }
}
