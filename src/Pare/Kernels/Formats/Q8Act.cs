using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pare.Kernels.Formats;

/// <summary>
/// Q8_0 activations for Q8_0 / Q4_0 weights, as llama.cpp's x86 quantize_row_q8_0: per 32 values d = max|x| / 127,
/// q = round-half-even(x * 127 / max|x|), and the dot products use d rounded to f16.
/// </summary>
/// <remarks>
/// Layout for nb blocks in
/// ng = ceil(nb / 16) groups: q[ng * 16 * 32] (int8), then dx[ng * 16] (the f16-rounded d as float), then
/// dxSum[ng * 16] = dx * sum(q); padding blocks are zero. vpdpbusd / vpmaddubsw multiply unsigned by signed bytes:
/// Q8_0 weights go in as |w| with x given w's sign (<see cref="DotSigned"/>), Q4_0 nibbles as they are (w + 8), and
/// the kernel subtracts 8 * sum over blocks of dw * dxSum.
/// </remarks>
internal static unsafe class Q8Act
{
    public const int BlockSize = 32;

    /// <summary>Whether the integer decode kernels can run: AVX2 int8 dots (with AVX-VNNI when present); x is quantized with AVX-512 or AVX2.</summary>
    public static bool Supported => Avx2.IsSupported && Vector256.IsHardwareAccelerated;

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
        bool wide = Vector512.IsHardwareAccelerated && Avx512F.IsSupported;
        for (int b = 0; b < nb; b++)
        {
            dx[b] = wide ? QuantizeBlock(x + 32 * b, q + 32 * b, out int sum) : QuantizeBlock256(x + 32 * b, q + 32 * b, out sum);
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

    /// <summary>
    /// <see cref="QuantizeBlock"/> with AVX2 only (as llama.cpp's AVX2 quantize_row_q8_0: cvtps2dq, two packs with
    /// signed saturation, then a lane fix-up); the same results.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float QuantizeBlock256(float* x, sbyte* q, out int sum)
    {
        var v0 = Vector256.Load(x); var v1 = Vector256.Load(x + 8);
        var v2 = Vector256.Load(x + 16); var v3 = Vector256.Load(x + 24);
        var m = Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3)));
        var n = Vector128.Max(m.GetLower(), m.GetUpper());
        n = Vector128.Max(n, Vector128.Shuffle(n, Vector128.Create(2, 3, 0, 1)));
        n = Vector128.Max(n, Vector128.Shuffle(n, Vector128.Create(1, 0, 3, 2)));
        float amax = n.ToScalar();
        float d = amax / 127, id = amax != 0 ? 127 / amax : 0;
        var vid = Vector256.Create(id);
        var q0 = Avx.ConvertToVector256Int32(v0 * vid); var q1 = Avx.ConvertToVector256Int32(v1 * vid);
        var q2 = Avx.ConvertToVector256Int32(v2 * vid); var q3 = Avx.ConvertToVector256Int32(v3 * vid);
        var b = Avx2.PackSignedSaturate(Avx2.PackSignedSaturate(q0, q1), Avx2.PackSignedSaturate(q2, q3));
        Avx2.PermuteVar8x32(b.AsInt32(), Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7)).AsSByte().Store(q);
        sum = Vector256.Sum(q0 + q1 + q2 + q3);
        return Fp16.ToFloat(Fp16.FromFloat(d));
    }

    /// <summary>Horizontal maximum of the 16 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float MaxOf(Vector512<float> v)
    {
        var m = Vector256.Max(v.GetLower(), v.GetUpper());
        var n = Vector128.Max(m.GetLower(), m.GetUpper());
        n = Vector128.Max(n, Vector128.Shuffle(n, Vector128.Create(2, 3, 0, 1)));
        n = Vector128.Max(n, Vector128.Shuffle(n, Vector128.Create(1, 0, 3, 2)));
        return n.ToScalar();
    }

    /// <summary>
    /// Dot products of four rows of a 32-weight block format (f16 scale, then quants) with Q8_0-quantized activations
    /// (see <see cref="Quantize"/>): one integer block dot per row and block (<see cref="IQ8Block.IntBlock"/>), scaled
    /// by dw * dx. The weight scales are read as scalars (a shift and a mask, <see cref="Scale"/>): the former
    /// vpgatherdd of sixteen scales per row cost more than the loads it saved, and kept 24 zmm registers live.
    /// A format whose quants carry an unsigned offset (Q4_0) removes it through the activations' block sums.
    /// </summary>
    public static void Dot4<TB>(byte* r0, byte* r1, byte* r2, byte* r3, float* prep, int cols, float* y) where TB : IQ8Block
    {
        int bb = TB.BlockBytes;
        int nb = cols / 32, ng = Q8Act.Groups(cols);
        sbyte* xq = (sbyte*)prep;
        float* dx = prep + ng * 128, dxSum = dx + ng * 16;
        // Even and odd blocks accumulate apart (two FMA chains per row; the compact kernel in Sparse/SparseMatMul.cs
        // does the same, so the two give equal results).
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, e0 = default, e1 = default, e2 = default, e3 = default;
        float c0 = 0, c1 = 0, c2 = 0, c3 = 0;
        for (int b = 0; b < nb; b += 2)
        {
            nint o = b * bb;
            var xv = Vector256.Load(xq + b * 32);
            float d = dx[b];
            float s0 = Scale(r0 + o), s1 = Scale(r1 + o), s2 = Scale(r2 + o), s3 = Scale(r3 + o);
            a0 = TB.IntBlock(r0 + o + 2, xv, s0 * d, a0);
            a1 = TB.IntBlock(r1 + o + 2, xv, s1 * d, a1);
            a2 = TB.IntBlock(r2 + o + 2, xv, s2 * d, a2);
            a3 = TB.IntBlock(r3 + o + 2, xv, s3 * d, a3);
            if (TB.Offset != 0)
            {
                float ds = dxSum[b];
                c0 += s0 * ds; c1 += s1 * ds; c2 += s2 * ds; c3 += s3 * ds;
            }
            if (b + 1 == nb) break;
            o += bb;
            xv = Vector256.Load(xq + b * 32 + 32);
            d = dx[b + 1];
            s0 = Scale(r0 + o); s1 = Scale(r1 + o); s2 = Scale(r2 + o); s3 = Scale(r3 + o);
            e0 = TB.IntBlock(r0 + o + 2, xv, s0 * d, e0);
            e1 = TB.IntBlock(r1 + o + 2, xv, s1 * d, e1);
            e2 = TB.IntBlock(r2 + o + 2, xv, s2 * d, e2);
            e3 = TB.IntBlock(r3 + o + 2, xv, s3 * d, e3);
            if (TB.Offset != 0)
            {
                float ds = dxSum[b + 1];
                c0 += s0 * ds; c1 += s1 * ds; c2 += s2 * ds; c3 += s3 * ds;
            }
        }
        float off = TB.Offset;
        y[0] = Vector256.Sum(a0 + e0) - off * c0; y[1] = Vector256.Sum(a1 + e1) - off * c1;
        y[2] = Vector256.Sum(a2 + e2) - off * c2; y[3] = Vector256.Sum(a3 + e3) - off * c3;
    }

    /// <summary>
    /// The f16 block scale at p as a float, exactly: the half's bits moved into float position give its value times
    /// 2^-112, and the multiply by 2^112 is exact. Only a subnormal scale forms a float denormal (a slow microcode
    /// assist, still exact); Q8_0 scales are max|w| / 127, subnormal only for blocks with all |w| below 8e-3.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scale(byte* p) =>
        BitConverter.Int32BitsToSingle(((int)*(short*)p << 13) & unchecked((int)0x8FFFFFFF)) * Fp16.Pow2_112;

    /// <summary>
    /// sum(w * x) over 32 signed bytes each, in eight int32 lanes: |w| (unsigned) times x with w's sign (vpsignb), as
    /// llama.cpp does; vpdpbusd with AVX-VNNI, otherwise vpmaddubsw + vpmaddwd (AVX2; the int16 pair sums cannot
    /// saturate: 2 x 128 x 127 &lt; 2^15).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> DotSigned(Vector256<sbyte> w, Vector256<sbyte> x)
    {
        var aw = Avx2.Abs(w);
        var sx = Avx2.Sign(x, w);
        return AvxVnni.IsSupported
            ? AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, aw, sx)
            : Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(aw, sx), Vector256.Create((short)1));
    }

    /// <summary>sum(u * x) over 32 unsigned bytes u (at most 15: Q4_0 nibbles) and signed x, in eight int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> DotUnsigned(Vector256<byte> u, Vector256<sbyte> x) =>
        AvxVnni.IsSupported
            ? AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, u, x)
            : Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u, x), Vector256.Create((short)1));
}

/// <summary>A 32-weight block format whose quants can be dotted with int8 activations by <see cref="Q8Act.Dot4"/>.</summary>
internal unsafe interface IQ8Block
{
    /// <summary>Bytes per block: a 2-byte f16 scale, then the quants.</summary>
    static abstract int BlockBytes { get; }
    /// <summary>What the stored quants carry on top of the signed weight (0 for Q8_0, 8 for Q4_0's unsigned nibbles).</summary>
    static abstract float Offset { get; }
    /// <summary>acc += (quants of the block at <paramref name="quants"/> · xv) * scale.</summary>
    static abstract Vector256<float> IntBlock(byte* quants, Vector256<sbyte> xv, float scale, Vector256<float> acc);
}
