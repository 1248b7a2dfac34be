using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Pare.Kernels.Formats;

/// <summary>Plain 32-bit floats.</summary>
internal static class F32Format
{
    public static void DequantRow(ReadOnlySpan<byte> src, Span<float> dst) => MemoryMarshal.Cast<byte, float>(src)[..dst.Length].CopyTo(dst);

    public static byte[] Quantize(ReadOnlySpan<float> src) => MemoryMarshal.AsBytes(src).ToArray();
}

/// <summary>F32 rows: four dot products sharing each load of x.</summary>
internal readonly unsafe struct F32Kernel : IRowKernel
{
    public static int PrepFloats(int cols) => 0;
    public static void Prepare(float* x, int cols, float* prep) { }

    public static void Dot4(byte* r0, byte* r1, byte* r2, byte* r3, float* x, float* prep, int cols, float* y)
    {
        float* w0 = (float*)r0, w1 = (float*)r1, w2 = (float*)r2, w3 = (float*)r3;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int i = 0;
        for (; i + 16 <= cols; i += 16)
        {
            var xv = Vector512.Load(x + i);
            a0 = Vector512.FusedMultiplyAdd(Vector512.Load(w0 + i), xv, a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.Load(w1 + i), xv, a1);
            a2 = Vector512.FusedMultiplyAdd(Vector512.Load(w2 + i), xv, a2);
            a3 = Vector512.FusedMultiplyAdd(Vector512.Load(w3 + i), xv, a3);
        }
        float s0 = Vector512.Sum(a0), s1 = Vector512.Sum(a1), s2 = Vector512.Sum(a2), s3 = Vector512.Sum(a3);
        for (; i < cols; i++)
        {
            s0 += w0[i] * x[i]; s1 += w1[i] * x[i]; s2 += w2[i] * x[i]; s3 += w3[i] * x[i];
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void DequantRow(byte* src, float* dst, int cols) => Buffer.MemoryCopy(src, dst, (long)cols * 4, (long)cols * 4);
}
