using System.Runtime.CompilerServices;
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
/// ~2^-124 of the largest (which cannot matter to the sum) lose bits to underflow. Chunks holding a subnormal half
/// take an exact scalar path (see <see cref="AnySubnormal"/>).
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

    public static void Dot4(byte* r0, byte* r1, byte* r2, byte* r3, float* x, float* prep, int cols, float* y)
    {
        ushort* w0 = (ushort*)r0, w1 = (ushort*)r1, w2 = (ushort*)r2, w3 = (ushort*)r3;
        float* xs = prep;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector512<float> e0 = default, e1 = default, e2 = default, e3 = default; // exact path, in x's own scale
        int i = 0;
        for (; i + 32 <= cols; i += 32)
        {
            if (AnySubnormal(w0 + i, w1 + i, w2 + i, w3 + i))
            {
                for (int k = i; k < i + 32; k += 16)
                {
                    var xe = Vector512.Load(x + k);
                    e0 = Vector512.FusedMultiplyAdd(Fp16.ToFloatExact16(w0 + k), xe, e0);
                    e1 = Vector512.FusedMultiplyAdd(Fp16.ToFloatExact16(w1 + k), xe, e1);
                    e2 = Vector512.FusedMultiplyAdd(Fp16.ToFloatExact16(w2 + k), xe, e2);
                    e3 = Vector512.FusedMultiplyAdd(Fp16.ToFloatExact16(w3 + k), xe, e3);
                }
                continue;
            }
            var xv = Vector512.Load(xs + i);
            a0 = Vector512.FusedMultiplyAdd(Fp16.ToFloatUnscaled16(w0 + i), xv, a0);
            a1 = Vector512.FusedMultiplyAdd(Fp16.ToFloatUnscaled16(w1 + i), xv, a1);
            a2 = Vector512.FusedMultiplyAdd(Fp16.ToFloatUnscaled16(w2 + i), xv, a2);
            a3 = Vector512.FusedMultiplyAdd(Fp16.ToFloatUnscaled16(w3 + i), xv, a3);
            xv = Vector512.Load(xs + i + 16);
            a0 = Vector512.FusedMultiplyAdd(Fp16.ToFloatUnscaled16(w0 + i + 16), xv, a0);
            a1 = Vector512.FusedMultiplyAdd(Fp16.ToFloatUnscaled16(w1 + i + 16), xv, a1);
            a2 = Vector512.FusedMultiplyAdd(Fp16.ToFloatUnscaled16(w2 + i + 16), xv, a2);
            a3 = Vector512.FusedMultiplyAdd(Fp16.ToFloatUnscaled16(w3 + i + 16), xv, a3);
        }
        float down = prep[cols];
        float s0 = Vector512.Sum(a0) * down + Vector512.Sum(e0), s1 = Vector512.Sum(a1) * down + Vector512.Sum(e1);
        float s2 = Vector512.Sum(a2) * down + Vector512.Sum(e2), s3 = Vector512.Sum(a3) * down + Vector512.Sum(e3);
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
        for (; i + 32 <= cols; i += 32)
        {
            if (AnySubnormal(h + i, h + i, h + i, h + i))
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
