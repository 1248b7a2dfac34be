using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pare.Kernels.Formats;

/// <summary>Q8_0: blocks of 32 values = f16 scale d, then 32 int8 q; value = q * d.</summary>
internal static class Q8_0Format
{
    public const int BlockSize = 32, BlockBytes = 34;

    public static void DequantRow(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / BlockSize; b++)
        {
            var block = src.Slice(b * BlockBytes, BlockBytes);
            float d = Fp16.ToFloat(BinaryPrimitives.ReadUInt16LittleEndian(block));
            for (int i = 0; i < BlockSize; i++) dst[b * BlockSize + i] = (sbyte)block[2 + i] * d;
        }
    }

    /// <summary>ggml's quantize_row_q8_0_ref: d = max|x| / 127, q = round(x / d) (half away from zero).</summary>
    public static byte[] Quantize(ReadOnlySpan<float> src)
    {
        var dst = new byte[src.Length / BlockSize * BlockBytes];
        for (int b = 0; b < src.Length / BlockSize; b++)
        {
            var x = src.Slice(b * BlockSize, BlockSize);
            var block = dst.AsSpan(b * BlockBytes, BlockBytes);
            float amax = 0;
            foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
            float d = amax / 127, id = d != 0 ? 1 / d : 0;
            BinaryPrimitives.WriteUInt16LittleEndian(block, Fp16.FromFloat(d));
            for (int i = 0; i < BlockSize; i++) block[2 + i] = (byte)(sbyte)MathF.Round(x[i] * id, MidpointRounding.AwayFromZero);
        }
        return dst;
    }
}

/// <summary>Q8_0 rows: widen int8 to int32, convert, dot with x per block, then one FMA with the block scale.</summary>
internal readonly unsafe struct Q8_0Kernel : IRowKernel, IQ8Block
{
    public static int PrepFloats(int cols) => Q8Act.Supported ? Q8Act.PrepFloats(cols) : 0;

    public static void Prepare(float* x, int cols, float* prep)
    {
        if (Q8Act.Supported) Q8Act.Quantize(x, cols, prep);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Q16(byte* p) => Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)p)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Block(byte* p, Vector512<float> x0, Vector512<float> x1, Vector512<float> acc)
    {
        var t = Vector512.FusedMultiplyAdd(Q16(p + 18), x1, Q16(p + 2) * x0);
        return Vector512.FusedMultiplyAdd(t, Vector512.Create(Fp16.ToFloatFast(*(ushort*)p)), acc);
    }

    /// <summary>One block against Q8_0 activations: the signed integer dot (<see cref="Q8Act.DotSigned"/>), times dw * dx.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> IntBlock(byte* p, Vector256<sbyte> xv, float scale, Vector256<float> acc) =>
        IntBlock(Vector256.Load((sbyte*)p), xv, scale, acc);

    /// <summary>The block step on quants already in a register (the compact sparse kernel expands them there).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> IntBlock(Vector256<sbyte> w, Vector256<sbyte> xv, float scale, Vector256<float> acc) =>
        Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Q8Act.DotSigned(w, xv)), Vector256.Create(scale), acc);

    public static int BlockBytes => 34;
    public static float Offset => 0;

    public static void Dot4(byte* r0, byte* r1, byte* r2, byte* r3, float* x, float* prep, int cols, float* y)
    {
        if (Q8Act.Supported) Q8Act.Dot4<Q8_0Kernel>(r0, r1, r2, r3, prep, cols, y);
        else Dot4Float(r0, r1, r2, r3, x, cols, y);
    }

    static void Dot4Float(byte* r0, byte* r1, byte* r2, byte* r3, float* x, int cols, float* y)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int nb = cols / Q8_0Format.BlockSize;
        for (int b = 0; b < nb; b++)
        {
            var x0 = Vector512.Load(x + b * 32);
            var x1 = Vector512.Load(x + b * 32 + 16);
            nint o = b * Q8_0Format.BlockBytes;
            a0 = Block(r0 + o, x0, x1, a0);
            a1 = Block(r1 + o, x0, x1, a1);
            a2 = Block(r2 + o, x0, x1, a2);
            a3 = Block(r3 + o, x0, x1, a3);
        }
        y[0] = Vector512.Sum(a0); y[1] = Vector512.Sum(a1); y[2] = Vector512.Sum(a2); y[3] = Vector512.Sum(a3);
    }

    public static void DequantRow(byte* src, float* dst, int cols)
    {
        for (int b = 0; b < cols / 32; b++, src += Q8_0Format.BlockBytes, dst += 32)
        {
            var d = Vector512.Create(Fp16.ToFloatFast(*(ushort*)src));
            (Q16(src + 2) * d).Store(dst);
            (Q16(src + 18) * d).Store(dst + 16);
        }
    }
}
