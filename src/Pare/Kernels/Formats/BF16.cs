using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pare.Kernels.Formats;

/// <summary>bfloat16: the upper 16 bits of a float.</summary>
internal static class BF16Format
{
    public static void DequantRow(ReadOnlySpan<byte> src, Span<float> dst)
    {
        var h = MemoryMarshal.Cast<byte, ushort>(src);
        for (int i = 0; i < dst.Length; i++) dst[i] = Fp16.BF16ToFloat(h[i]);
    }

    public static byte[] Quantize(ReadOnlySpan<float> src)
    {
        var dst = new byte[src.Length * 2];
        var h = MemoryMarshal.Cast<byte, ushort>(dst.AsSpan());
        for (int i = 0; i < src.Length; i++) h[i] = Fp16.FloatToBF16(src[i]);
        return dst;
    }
}

/// <summary>BF16 rows: zero-extend 16 values to 32 bits and shift them into the upper half.</summary>
internal readonly unsafe struct BF16Kernel : IRowKernel
{
    public static int PrepFloats(int cols) => 0;
    public static void Prepare(float* x, int cols, float* prep) { }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Load16(ushort* p) => (Avx512F.ConvertToVector512Int32(Vector256.Load(p)) << 16).AsSingle();

    public static void Dot4(byte* r0, byte* r1, byte* r2, byte* r3, float* x, float* prep, int cols, float* y)
    {
        ushort* w0 = (ushort*)r0, w1 = (ushort*)r1, w2 = (ushort*)r2, w3 = (ushort*)r3;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int i = 0;
        for (; i + 16 <= cols; i += 16)
        {
            var xv = Vector512.Load(x + i);
            a0 = Vector512.FusedMultiplyAdd(Load16(w0 + i), xv, a0);
            a1 = Vector512.FusedMultiplyAdd(Load16(w1 + i), xv, a1);
            a2 = Vector512.FusedMultiplyAdd(Load16(w2 + i), xv, a2);
            a3 = Vector512.FusedMultiplyAdd(Load16(w3 + i), xv, a3);
        }
        float s0 = Vector512.Sum(a0), s1 = Vector512.Sum(a1), s2 = Vector512.Sum(a2), s3 = Vector512.Sum(a3);
        for (; i < cols; i++)
        {
            s0 += Fp16.BF16ToFloat(w0[i]) * x[i]; s1 += Fp16.BF16ToFloat(w1[i]) * x[i];
            s2 += Fp16.BF16ToFloat(w2[i]) * x[i]; s3 += Fp16.BF16ToFloat(w3[i]) * x[i];
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
    }

    public static void DequantRow(byte* src, float* dst, int cols)
    {
        ushort* h = (ushort*)src;
        int i = 0;
        for (; i + 16 <= cols; i += 16) Load16(h + i).Store(dst + i);
        for (; i < cols; i++) dst[i] = Fp16.BF16ToFloat(h[i]);
    }
}
