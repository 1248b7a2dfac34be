using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

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
/// F16 rows without F16C: each half becomes a float 2^-112 times too small (<see cref="Fp16.ToFloatUnscaled16"/>),
/// and instead of multiplying every weight by 2^112, x is prescaled once per call by 2^s (chosen from max|x| so
/// it cannot overflow) and each sum rescaled by 2^(112-s). Power-of-two scalings are exact; only products below
/// ~2^-124 of the largest (which cannot matter to the sum) lose bits to underflow.
/// Prep layout: [0, cols) = x * 2^s, [cols] = 2^(112-s).
/// </summary>
internal readonly unsafe struct F16Kernel : IRowKernel
{
    public static int PrepFloats(int cols) => cols + 1;

    public static void Prepare(float* x, int cols, float* prep)
    {
        float maxAbs = 0;
        for (int i = 0; i < cols; i++) maxAbs = MathF.Max(maxAbs, MathF.Abs(x[i]));
        // maxAbs < 2^k; put it at or below 2^120 so x * 2^s and the partial sums stay finite.
        int k = maxAbs == 0 ? 0 : Math.ILogB(maxAbs) + 1;
        int s = Math.Clamp(120 - k, 0, 127);
        float up = BitConverter.Int32BitsToSingle((127 + s) << 23);
        for (int i = 0; i < cols; i++) prep[i] = x[i] * up;
        prep[cols] = BitConverter.Int32BitsToSingle((127 + 112 - s) << 23);
    }

    public static void Dot4(byte* r0, byte* r1, byte* r2, byte* r3, float* x, float* prep, int cols, float* y)
    {
        ushort* w0 = (ushort*)r0, w1 = (ushort*)r1, w2 = (ushort*)r2, w3 = (ushort*)r3;
        float* xs = prep;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int i = 0;
        for (; i + 16 <= cols; i += 16)
        {
            var xv = Vector512.Load(xs + i);
            a0 = Vector512.FusedMultiplyAdd(Fp16.ToFloatUnscaled16(w0 + i), xv, a0);
            a1 = Vector512.FusedMultiplyAdd(Fp16.ToFloatUnscaled16(w1 + i), xv, a1);
            a2 = Vector512.FusedMultiplyAdd(Fp16.ToFloatUnscaled16(w2 + i), xv, a2);
            a3 = Vector512.FusedMultiplyAdd(Fp16.ToFloatUnscaled16(w3 + i), xv, a3);
        }
        float down = prep[cols];
        float s0 = Vector512.Sum(a0) * down, s1 = Vector512.Sum(a1) * down, s2 = Vector512.Sum(a2) * down, s3 = Vector512.Sum(a3) * down;
        for (; i < cols; i++)
        {
            s0 += Fp16.ToFloatFast(w0[i]) * x[i]; s1 += Fp16.ToFloatFast(w1[i]) * x[i];
            s2 += Fp16.ToFloatFast(w2[i]) * x[i]; s3 += Fp16.ToFloatFast(w3[i]) * x[i];
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
    }

    public static void DequantRow(byte* src, float* dst, int cols)
    {
        ushort* h = (ushort*)src;
        var scale = Vector512.Create(Fp16.Pow2_112);
        int i = 0;
        for (; i + 16 <= cols; i += 16) (Fp16.ToFloatUnscaled16(h + i) * scale).Store(dst + i);
        for (; i < cols; i++) dst[i] = Fp16.ToFloatFast(h[i]);
    }
}
