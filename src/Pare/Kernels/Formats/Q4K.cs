using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pare.Kernels.Formats;

/// <summary>
/// Q4_K super-blocks of 256 values (144 bytes): f16 d, f16 dmin, 12 bytes packing eight 6-bit scales and eight
/// 6-bit mins, then 128 bytes of 4-bit q. Sub-block j (32 values) has value = d * sc[j] * q - dmin * m[j].
/// The 64 values of sub-blocks 2k and 2k+1 share the 32 bytes qs[32k..32k+32): low nibbles are sub-block 2k,
/// high nibbles sub-block 2k+1.
/// </summary>
internal static class Q4KFormat
{
    public const int BlockSize = 256, BlockBytes = 144;

    /// <summary>ggml's get_scale_min_k4: sub-blocks 0-3 use the low 6 bits of bytes 0-7; 4-7 use nibbles of bytes 8-11 plus the top 2 bits of bytes 0-7.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ScaleMin(ReadOnlySpan<byte> s, int j, out int sc, out int m)
    {
        if (j < 4) { sc = s[j] & 63; m = s[j + 4] & 63; }
        else { sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4); m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4); }
    }

    public static void DequantRow(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / BlockSize; b++)
        {
            var block = src.Slice(b * BlockBytes, BlockBytes);
            float d = Fp16.ToFloat(BinaryPrimitives.ReadUInt16LittleEndian(block));
            float dmin = Fp16.ToFloat(BinaryPrimitives.ReadUInt16LittleEndian(block[2..]));
            var scales = block.Slice(4, 12);
            var qs = block.Slice(16, 128);
            var y = dst.Slice(b * BlockSize, BlockSize);
            for (int k = 0; k < 4; k++)
            {
                ScaleMin(scales, 2 * k, out int sc0, out int m0);
                ScaleMin(scales, 2 * k + 1, out int sc1, out int m1);
                float d0 = d * sc0, min0 = dmin * m0, d1 = d * sc1, min1 = dmin * m1;
                for (int l = 0; l < 32; l++)
                {
                    y[64 * k + l] = d0 * (qs[32 * k + l] & 0xF) - min0;
                    y[64 * k + 32 + l] = d1 * (qs[32 * k + l] >> 4) - min1;
                }
            }
        }
    }

    /// <summary>
    /// A simple (not ggml's iterative) quantizer, good enough for tests: per sub-block the range [min(0, lo), hi] is
    /// split into 15 steps; scales and mins are then quantized to 6 bits against the super-block maxima.
    /// </summary>
    public static byte[] Quantize(ReadOnlySpan<float> src)
    {
        var dst = new byte[src.Length / BlockSize * BlockBytes];
        Span<float> scale = stackalloc float[8], offset = stackalloc float[8];
        Span<int> sc = stackalloc int[8], mn = stackalloc int[8];
        Span<byte> q = stackalloc byte[BlockSize];
        for (int b = 0; b < src.Length / BlockSize; b++)
        {
            var x = src.Slice(b * BlockSize, BlockSize);
            var block = dst.AsSpan(b * BlockBytes, BlockBytes);
            for (int j = 0; j < 8; j++)
            {
                float lo = 0, hi = float.MinValue;
                foreach (float v in x.Slice(32 * j, 32)) { lo = MathF.Min(lo, v); hi = MathF.Max(hi, v); }
                scale[j] = MathF.Max(0, hi - lo) / 15;
                offset[j] = -lo;
            }
            float maxScale = 0, maxOffset = 0;
            for (int j = 0; j < 8; j++) { maxScale = MathF.Max(maxScale, scale[j]); maxOffset = MathF.Max(maxOffset, offset[j]); }
            ushort dh = Fp16.FromFloat(maxScale / 63), dminh = Fp16.FromFloat(maxOffset / 63);
            float d = Fp16.ToFloat(dh), dmin = Fp16.ToFloat(dminh);
            for (int j = 0; j < 8; j++)
            {
                // Round the scale up and the offset down so the range still covers the sub-block.
                sc[j] = d == 0 ? 0 : Math.Clamp((int)MathF.Ceiling(scale[j] / d), 0, 63);
                mn[j] = dmin == 0 ? 0 : Math.Clamp((int)MathF.Round(offset[j] / dmin), 0, 63);
                float s = d * sc[j], o = dmin * mn[j];
                for (int l = 0; l < 32; l++)
                    q[32 * j + l] = s == 0 ? (byte)0 : (byte)Math.Clamp((int)MathF.Round((x[32 * j + l] + o) / s), 0, 15);
            }
            BinaryPrimitives.WriteUInt16LittleEndian(block, dh);
            BinaryPrimitives.WriteUInt16LittleEndian(block[2..], dminh);
            var scales = block.Slice(4, 12);
            for (int j = 0; j < 8; j++)
            {
                if (j < 4) { scales[j] = (byte)sc[j]; scales[j + 4] = (byte)mn[j]; }
                else
                {
                    scales[j + 4] = (byte)((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
                    scales[j - 4] |= (byte)((sc[j] >> 4) << 6);
                    scales[j] |= (byte)((mn[j] >> 4) << 6);
                }
            }
            var qs = block.Slice(16, 128);
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 32; l++)
                    qs[32 * k + l] = (byte)(q[64 * k + l] | (q[64 * k + 32 + l] << 4));
        }
        return dst;
    }
}

/// <summary>
/// Q4_K rows. Per sub-block the dot is d*sc*dot(q, x) - dmin*m*sum(x); the sums of x per 32 values are shared by
/// all rows, so <see cref="Prepare"/> computes them once per call. Prep layout: [cols / 32] sub-block sums.
/// </summary>
internal readonly unsafe struct Q4KKernel : IRowKernel
{
    public static int PrepFloats(int cols) => cols / 32;

    public static void Prepare(float* x, int cols, float* prep)
    {
        for (int j = 0; j < cols / 32; j++)
            prep[j] = Vector512.Sum(Vector512.Load(x + 32 * j) + Vector512.Load(x + 32 * j + 16));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void ScaleMin(byte* s, int j, out int sc, out int m)
    {
        if (j < 4) { sc = s[j] & 63; m = s[j + 4] & 63; }
        else { sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4); m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4); }
    }

    /// <summary>One super-block of one row: returns the scaled q.x part as a vector, the min part as a scalar.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Block(byte* p, float* x, float* xsum, Vector512<float> acc, ref float minSum)
    {
        float d = Fp16.ToFloatFast(*(ushort*)p), dmin = Fp16.ToFloatFast(*(ushort*)(p + 2));
        byte* s = p + 4, qs = p + 16;
        // vpermps on a table of 0..15 converts a nibble to float and ignores the bits above it (no mask needed).
        var nib = Vector512.Create(0f, 1f, 2f, 3f, 4f, 5f, 6f, 7f, 8f, 9f, 10f, 11f, 12f, 13f, 14f, 15f);
        float mins = 0;
        for (int k = 0; k < 4; k++)
        {
            ScaleMin(s, 2 * k, out int sc0, out int m0);
            ScaleMin(s, 2 * k + 1, out int sc1, out int m1);
            var v0 = Avx512F.ConvertToVector512Int32(Vector128.Load(qs + 32 * k));
            var v1 = Avx512F.ConvertToVector512Int32(Vector128.Load(qs + 32 * k + 16));
            float* xk = x + 64 * k;
            var lo = Vector512.FusedMultiplyAdd(Avx512F.PermuteVar16x32(nib, v1), Vector512.Load(xk + 16),
                Avx512F.PermuteVar16x32(nib, v0) * Vector512.Load(xk));
            var hi = Vector512.FusedMultiplyAdd(Avx512F.PermuteVar16x32(nib, Vector512.ShiftRightLogical(v1, 4)), Vector512.Load(xk + 48),
                Avx512F.PermuteVar16x32(nib, Vector512.ShiftRightLogical(v0, 4)) * Vector512.Load(xk + 32));
            acc = Vector512.FusedMultiplyAdd(lo, Vector512.Create(d * sc0), acc);
            acc = Vector512.FusedMultiplyAdd(hi, Vector512.Create(d * sc1), acc);
            mins += m0 * xsum[2 * k] + m1 * xsum[2 * k + 1];
        }
        minSum += dmin * mins;
        return acc;
    }

    public static void Dot4(byte* r0, byte* r1, byte* r2, byte* r3, float* x, float* prep, int cols, float* y)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        float m0 = 0, m1 = 0, m2 = 0, m3 = 0;
        int nb = cols / Q4KFormat.BlockSize;
        for (int b = 0; b < nb; b++)
        {
            nint o = b * Q4KFormat.BlockBytes;
            float* xb = x + b * 256, sb = prep + b * 8;
            a0 = Block(r0 + o, xb, sb, a0, ref m0);
            a1 = Block(r1 + o, xb, sb, a1, ref m1);
            a2 = Block(r2 + o, xb, sb, a2, ref m2);
            a3 = Block(r3 + o, xb, sb, a3, ref m3);
        }
        y[0] = Vector512.Sum(a0) - m0; y[1] = Vector512.Sum(a1) - m1; y[2] = Vector512.Sum(a2) - m2; y[3] = Vector512.Sum(a3) - m3;
    }

    public static void DequantRow(byte* src, float* dst, int cols)
    {
        var mask = Vector512.Create(0xF);
        for (int b = 0; b < cols / 256; b++, src += Q4KFormat.BlockBytes, dst += 256)
        {
            float d = Fp16.ToFloatFast(*(ushort*)src), dmin = Fp16.ToFloatFast(*(ushort*)(src + 2));
            byte* s = src + 4, qs = src + 16;
            for (int k = 0; k < 4; k++)
            {
                ScaleMin(s, 2 * k, out int sc0, out int m0);
                ScaleMin(s, 2 * k + 1, out int sc1, out int m1);
                Vector512<float> d0 = Vector512.Create(d * sc0), min0 = Vector512.Create(dmin * m0);
                Vector512<float> d1 = Vector512.Create(d * sc1), min1 = Vector512.Create(dmin * m1);
                var v0 = Avx512F.ConvertToVector512Int32(Vector128.Load(qs + 32 * k));
                var v1 = Avx512F.ConvertToVector512Int32(Vector128.Load(qs + 32 * k + 16));
                float* y = dst + 64 * k;
                (d0 * Vector512.ConvertToSingle(v0 & mask) - min0).Store(y);
                (d0 * Vector512.ConvertToSingle(v1 & mask) - min0).Store(y + 16);
                (d1 * Vector512.ConvertToSingle(Vector512.ShiftRightLogical(v0, 4)) - min1).Store(y + 32);
                (d1 * Vector512.ConvertToSingle(Vector512.ShiftRightLogical(v1, 4)) - min1).Store(y + 48);
            }
        }
    }
}
