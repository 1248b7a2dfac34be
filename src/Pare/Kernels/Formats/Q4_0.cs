using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pare.Kernels.Formats;

/// <summary>
/// Q4_0: blocks of 32 values = f16 scale d, then 16 bytes; byte i holds element i in its low nibble and element
/// i + 16 in its high nibble; value = (q - 8) * d.
/// </summary>
internal static class Q4_0Format
{
    public const int BlockSize = 32, BlockBytes = 18;

    public static void DequantRow(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / BlockSize; b++)
        {
            var block = src.Slice(b * BlockBytes, BlockBytes);
            float d = Fp16.ToFloat(BinaryPrimitives.ReadUInt16LittleEndian(block));
            for (int i = 0; i < 16; i++)
            {
                dst[b * BlockSize + i] = ((block[2 + i] & 0xF) - 8) * d;
                dst[b * BlockSize + i + 16] = ((block[2 + i] >> 4) - 8) * d;
            }
        }
    }

    /// <summary>
    /// ggml's quantize_row_q4_0_ref: d = m / -8 where m is the value of largest magnitude (so m maps to q = 0 exactly),
    /// q = min(15, trunc(x / d + 8.5)).
    /// </summary>
    public static byte[] Quantize(ReadOnlySpan<float> src)
    {
        var dst = new byte[src.Length / BlockSize * BlockBytes];
        for (int b = 0; b < src.Length / BlockSize; b++)
        {
            var x = src.Slice(b * BlockSize, BlockSize);
            var block = dst.AsSpan(b * BlockBytes, BlockBytes);
            float amax = 0, max = 0;
            foreach (float v in x)
                if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
            float d = max / -8, id = d != 0 ? 1 / d : 0;
            BinaryPrimitives.WriteUInt16LittleEndian(block, Fp16.FromFloat(d));
            for (int i = 0; i < 16; i++)
            {
                int q0 = Math.Min(15, (int)(sbyte)(x[i] * id + 8.5f));
                int q1 = Math.Min(15, (int)(sbyte)(x[i + 16] * id + 8.5f));
                block[2 + i] = (byte)(q0 | (q1 << 4));
            }
        }
        return dst;
    }
}

/// <summary>Q4_0 rows: one 16-byte load gives both halves of a block (low nibbles, high nibbles).</summary>
internal readonly unsafe struct Q4_0Kernel : IRowKernel, IQ8Block
{
    public static int PrepFloats(int cols) => Q8Act.Supported ? Q8Act.PrepFloats(cols) : 0;

    public static void Prepare(float* x, int cols, float* prep)
    {
        if (Q8Act.Supported) Q8Act.Quantize(x, cols, prep);
    }

    /// <summary>
    /// The block's 32 values without the scale: (lo, hi) = (q - 8) of elements 0..15 and 16..31. A 16-entry float
    /// table lookup (vpermps reads only the low 4 bits of each index) replaces mask, subtract and convert.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static (Vector512<float> Lo, Vector512<float> Hi) Q32(byte* p)
    {
        var v = Avx512F.ConvertToVector512Int32(Vector128.Load(p + 2));
        var table = Vector512.Create(-8f, -7f, -6f, -5f, -4f, -3f, -2f, -1f, 0f, 1f, 2f, 3f, 4f, 5f, 6f, 7f);
        return (Avx512F.PermuteVar16x32(table, v), Avx512F.PermuteVar16x32(table, Vector512.ShiftRightLogical(v, 4)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Block(byte* p, Vector512<float> x0, Vector512<float> x1, Vector512<float> acc)
    {
        var (lo, hi) = Q32(p);
        var t = Vector512.FusedMultiplyAdd(hi, x1, lo * x0);
        return Vector512.FusedMultiplyAdd(t, Vector512.Create(Fp16.ToFloatFast(*(ushort*)p)), acc);
    }

    /// <summary>One block against Q8_0 activations: the nibbles (unsigned, w + 8) times x (signed), times dw * dx.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> IntBlock(byte* p, Vector256<sbyte> xv, float scale, Vector256<float> acc)
    {
        var v = Vector128.Load(p);
        var u = Vector256.Create(v, Vector128.ShiftRightLogical(v.AsUInt16(), 4).AsByte()) & Vector256.Create((byte)0x0F); // q = w + 8
        var dot = Q8Act.DotUnsigned(u, xv);
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(dot), Vector256.Create(scale), acc);
    }

    public static int BlockBytes => 18;
    public static float Offset => 8;

    public static void Dot4(byte* r0, byte* r1, byte* r2, byte* r3, float* x, float* prep, int cols, float* y)
    {
        if (Q8Act.Supported) Q8Act.Dot4<Q4_0Kernel>(r0, r1, r2, r3, prep, cols, y);
        else Dot4Float(r0, r1, r2, r3, x, cols, y);
    }

    static void Dot4Float(byte* r0, byte* r1, byte* r2, byte* r3, float* x, int cols, float* y)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int nb = cols / Q4_0Format.BlockSize;
        for (int b = 0; b < nb; b++)
        {
            var x0 = Vector512.Load(x + b * 32);
            var x1 = Vector512.Load(x + b * 32 + 16);
            nint o = b * Q4_0Format.BlockBytes;
            a0 = Block(r0 + o, x0, x1, a0);
            a1 = Block(r1 + o, x0, x1, a1);
            a2 = Block(r2 + o, x0, x1, a2);
            a3 = Block(r3 + o, x0, x1, a3);
        }
        y[0] = Vector512.Sum(a0); y[1] = Vector512.Sum(a1); y[2] = Vector512.Sum(a2); y[3] = Vector512.Sum(a3);
    }

    public static void DequantRow(byte* src, float* dst, int cols)
    {
        for (int b = 0; b < cols / 32; b++, src += Q4_0Format.BlockBytes, dst += 32)
        {
            var d = Vector512.Create(Fp16.ToFloatFast(*(ushort*)src));
            var (lo, hi) = Q32(src);
            (lo * d).Store(dst);
            (hi * d).Store(dst + 16);
        }
    }
}
