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
            var v0 = Vector512.Load(x + 32 * b);
            var v1 = Vector512.Load(x + 32 * b + 16);
            float amax = MaxOf(Vector512.Max(Vector512.Abs(v0), Vector512.Abs(v1)));
            float d = amax / 127, id = amax != 0 ? 127 / amax : 0;
            var vid = Vector512.Create(id);
            // cvtps2dq rounds half to even under the default MXCSR, as _mm256_round_ps(_MM_ROUND_NEAREST).
            var q0 = Avx512F.ConvertToVector512Int32(v0 * vid);
            var q1 = Avx512F.ConvertToVector512Int32(v1 * vid);
            Avx512F.ConvertToVector128SByte(q0).Store(q + 32 * b);
            Avx512F.ConvertToVector128SByte(q1).Store(q + 32 * b + 16);
            float dh = Fp16.ToFloat(Fp16.FromFloat(d));
            dx[b] = dh;
            dxSum[b] = dh * Vector512.Sum(q0 + q1);
        }
        for (int b = nb; b < ng * 16; b++)
        {
            new Span<sbyte>(q + 32 * b, 32).Clear();
            dx[b] = 0;
            dxSum[b] = 0;
        }
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
}
