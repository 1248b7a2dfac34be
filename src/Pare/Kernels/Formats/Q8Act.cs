using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pare.Kernels.Formats;

/// <summary>
/// Q8_0 activations for Q8_0 / Q4_0 weights, as llama.cpp's x86 quantize_row_q8_0: per 32 values d = max|x| / 127,
/// q = round-half-even(x * 127 / max|x|), and the dot products use d rounded to f16.
/// </summary>
/// <remarks>
/// The kernels take blocks sixteen at a time (one gather fetches sixteen weight scales). Layout for nb blocks in
/// ng = ceil(nb / 16) groups: q[ng * 16 * 32] (int8), then dx[ng * 16] (the f16-rounded d as float), then
/// dxSum[ng * 16] = dx * sum(q); padding blocks are zero. vpdpbusd multiplies unsigned by signed bytes, so the
/// kernels offset the weights to unsigned (w + 128 for Q8_0, the raw nibble for Q4_0) and subtract
/// offset * sum over blocks of dw * dxSum, one FMA per sixteen blocks.
/// </remarks>
internal static unsafe class Q8Act
{
    public const int BlockSize = 32;

    /// <summary>Whether the integer kernels can run (256-bit AVX-VNNI plus AVX-512 for the scales).</summary>
    public static bool Supported => AvxVnni.IsSupported && Avx512F.IsSupported;

    public static int Groups(int cols) => (cols / BlockSize + 15) / 16;

    public static int PrepFloats(int cols) => Groups(cols) * (16 * BlockSize / 4 + 32);

    /// <summary>Rounds one block as the kernel does: writes q, returns d rounded to f16.</summary>
    public static float QuantizeBlockReference(ReadOnlySpan<float> x, Span<sbyte> q)
    {
        float amax = 0;
        for (int i = 0; i < BlockSize; i++) amax = MathF.Max(amax, MathF.Abs(x[i]));
        float d = amax / 127, id = amax != 0 ? 127 / amax : 0;
        for (int i = 0; i < BlockSize; i++) q[i] = (sbyte)MathF.Round(x[i] * id, MidpointRounding.ToEven);
        return Fp16.ToFloat(Fp16.FromFloat(d));
    }

    public static void Quantize(float* x, int cols, float* prep)
    {
        int nb = cols / BlockSize, ng = Groups(cols);
        sbyte* q = (sbyte*)prep;
        float* dx = prep + ng * 128, dxSum = dx + ng * 16;
        for (int b = 0; b < nb; b++)
        {
            dx[b] = QuantizeBlock(x + 32 * b, q + 32 * b, out int sum);
            dxSum[b] = dx[b] * sum;
        }
        for (int b = nb; b < ng * 16; b++)
        {
            new Span<sbyte>(q + 32 * b, 32).Clear();
            dx[b] = 0;
            dxSum[b] = 0;
        }
    }

    /// <summary>Rounds the 32 values at x to q (as <see cref="QuantizeBlockReference"/>); returns d rounded to f16, and sum(q).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float QuantizeBlock(float* x, sbyte* q, out int sum)
    {
        var v0 = Vector512.Load(x);
        var v1 = Vector512.Load(x + 16);
        float amax = MaxOf(Vector512.Max(Vector512.Abs(v0), Vector512.Abs(v1)));
        float d = amax / 127, id = amax != 0 ? 127 / amax : 0;
        var vid = Vector512.Create(id);
        // cvtps2dq rounds half to even under the default MXCSR, as _mm256_round_ps(_MM_ROUND_NEAREST).
        var q0 = Avx512F.ConvertToVector512Int32(v0 * vid);
        var q1 = Avx512F.ConvertToVector512Int32(v1 * vid);
        Avx512F.ConvertToVector128SByte(q0).Store(q);
        Avx512F.ConvertToVector128SByte(q1).Store(q + 16);
        sum = Vector512.Sum(q0 + q1);
        return Fp16.ToFloat(Fp16.FromFloat(d));
    }

    /// <summary>Sixteen f16 weight scales, blockBytes apart from p (the last ones clamped to block last), as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Scales(byte* p, int blockBytes, int last)
    {
        var index = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        if (last < 15) index = Vector512.Min(index, Vector512.Create(last));
        index *= blockBytes;
        var h = Vector512.Create(Avx2.GatherVector256((int*)p, index.GetLower(), 1), Avx2.GatherVector256((int*)p, index.GetUpper(), 1))
              & Vector512.Create(0xFFFF);
        // Exact for normals, subnormals and zeros, without forming float denormals (see Fp16.ToFloatFast).
        var abs = h & Vector512.Create(0x7FFF);
        var normal = ((abs << 13) + Vector512.Create(112 << 23)).AsSingle();
        var subnormal = Vector512.ConvertToSingle(abs) * Vector512.Create(5.9604645E-08f);
        var r = Vector512.ConditionalSelect(Vector512.LessThan(abs, Vector512.Create(0x400)).AsSingle(), subnormal, normal);
        return (r.AsInt32() | ((h & Vector512.Create(0x8000)) << 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float MaxOf(Vector512<float> v)
    {
        var m = Vector256.Max(v.GetLower(), v.GetUpper());
        var n = Vector128.Max(m.GetLower(), m.GetUpper());
        n = Vector128.Max(n, Vector128.Shuffle(n, Vector128.Create(2, 3, 0, 1)));
        n = Vector128.Max(n, Vector128.Shuffle(n, Vector128.Create(1, 0, 3, 2)));
        return n.ToScalar();
    }

    /// <summary>
    /// Dot products of four rows of a 32-weight block format (f16 scale, then quants) with Q8_0-quantized activations
    /// (see <see cref="Quantize"/>): integer block dots with vpdpbusd, scales applied 16 blocks at a time, and the
    /// unsigned offset of the stored quants removed through the activations' block sums.
    /// </summary>
    public static void Dot4<TB>(byte* r0, byte* r1, byte* r2, byte* r3, float* prep, int cols, float* y) where TB : IQ8Block
    {
        int bb = TB.BlockBytes;
        int nb = cols / 32, ng = Q8Act.Groups(cols);
        sbyte* xq = (sbyte*)prep;
        float* dx = prep + ng * 128, dxSum = dx + ng * 16;
        float* s = stackalloc float[64];
        // Even and odd blocks of a group accumulate apart (two FMA chains per row; the compact kernel in
        // Sparse/SparseMatMul.cs does the same, so the two give equal results).
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, e0 = default, e1 = default, e2 = default, e3 = default;
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default;
        for (int g = 0; g < ng; g++)
        {
            int b0 = 16 * g, nk = Math.Min(16, nb - b0);
            nint o = b0 * bb;
            var vdx = Vector512.Load(dx + b0);
            var vds = Vector512.Load(dxSum + b0);
            var d0 = Q8Act.Scales(r0 + o, bb, nk - 1);
            var d1 = Q8Act.Scales(r1 + o, bb, nk - 1);
            var d2 = Q8Act.Scales(r2 + o, bb, nk - 1);
            var d3 = Q8Act.Scales(r3 + o, bb, nk - 1);
            (d0 * vdx).Store(s); (d1 * vdx).Store(s + 16); (d2 * vdx).Store(s + 32); (d3 * vdx).Store(s + 48);
            c0 = Vector512.FusedMultiplyAdd(d0, vds, c0); c1 = Vector512.FusedMultiplyAdd(d1, vds, c1);
            c2 = Vector512.FusedMultiplyAdd(d2, vds, c2); c3 = Vector512.FusedMultiplyAdd(d3, vds, c3);
            for (int k = 0; k < nk; k += 2)
            {
                var xv = Vector256.Load(xq + (b0 + k) * 32);
                nint ok = o + k * bb + 2;
                a0 = TB.IntBlock(r0 + ok, xv, s[k], a0);
                a1 = TB.IntBlock(r1 + ok, xv, s[16 + k], a1);
                a2 = TB.IntBlock(r2 + ok, xv, s[32 + k], a2);
                a3 = TB.IntBlock(r3 + ok, xv, s[48 + k], a3);
                if (k + 1 == nk) break;
                xv = Vector256.Load(xq + (b0 + k + 1) * 32);
                ok += bb;
                e0 = TB.IntBlock(r0 + ok, xv, s[k + 1], e0);
                e1 = TB.IntBlock(r1 + ok, xv, s[17 + k], e1);
                e2 = TB.IntBlock(r2 + ok, xv, s[33 + k], e2);
                e3 = TB.IntBlock(r3 + ok, xv, s[49 + k], e3);
            }
        }
        float off = TB.Offset;
        y[0] = Vector256.Sum(a0 + e0) - off * Vector512.Sum(c0); y[1] = Vector256.Sum(a1 + e1) - off * Vector512.Sum(c1);
        y[2] = Vector256.Sum(a2 + e2) - off * Vector512.Sum(c2); y[3] = Vector256.Sum(a3 + e3) - off * Vector512.Sum(c3);
    }
}

/// <summary>A 32-weight block format whose quants can be dotted with int8 activations by <see cref="Q8Act.Dot4"/>.</summary>
internal unsafe interface IQ8Block
{
    /// <summary>Bytes per block: a 2-byte f16 scale, then the quants.</summary>
    static abstract int BlockBytes { get; }
    /// <summary>What the stored quants carry on top of the signed weight (vpdpbusd multiplies unsigned by signed bytes).</summary>
    static abstract float Offset { get; }
    /// <summary>acc += (unsigned quants of the block at <paramref name="quants"/> · xv) * scale.</summary>
    static abstract Vector256<float> IntBlock(byte* quants, Vector256<sbyte> xv, float scale, Vector256<float> acc);
}
