using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pare.Kernels;

/// <summary>IEEE half and bfloat16 conversions: exact references and the bit tricks the fast kernels use.</summary>
internal static class Fp16
{
    /// <summary>2^112: rebiases a half exponent (bias 15) that was moved into a float exponent field (bias 127).</summary>
    public const float Pow2_112 = 5.192296858534828E+33f;

    /// <summary>Reference conversion, exact for every half including Inf and NaN.</summary>
    public static float ToFloat(ushort h) => (float)BitConverter.UInt16BitsToHalf(h);

    /// <summary>Round-to-nearest-even conversion, as ggml's FP32_TO_FP16.</summary>
    public static ushort FromFloat(float f) => BitConverter.HalfToUInt16Bits((Half)f);

    /// <summary>
    /// Branch-free conversion for block scales, exact for normals, subnormals and zeros (not Inf/NaN). It never forms a
    /// float denormal: block scales of K-quants are often half subnormals, and a denormal operand costs a microcode
    /// assist of ~100 cycles per block on x86 (that alone made Q6_K 4x slower).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloatFast(ushort h)
    {
        int x = h & 0x7FFF;
        float normal = BitConverter.Int32BitsToSingle((x << 13) + (112 << 23)); // rebias exponent 15 -> 127
        float subnormal = x * 5.9604645E-08f;                                    // m * 2^-24, exact
        float r = x < 0x400 ? subnormal : normal;
        return BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(r) | ((h & 0x8000) << 16));
    }

    /// <summary>
    /// 16 halves to 16 floats that are 2^-112 times their values (the rebias multiply is left to the caller, who can
    /// often fold it into something it multiplies anyway).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector512<float> ToFloatUnscaled16(ushort* p)
    {
        var v = Avx512F.ConvertToVector512Int32(Vector256.Load((short*)p));
        return ((v << 13) & Vector512.Create(unchecked((int)0x8FFFFFFF))).AsSingle();
    }

    /// <summary>
    /// 16 halves to 16 floats, exact for normals, subnormals and zeros and without forming float denormals; about
    /// three times the work of <see cref="ToFloatUnscaled16"/>, so kernels use it only where subnormals occur.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector512<float> ToFloatExact16(ushort* p)
    {
        var v = Avx512F.ConvertToVector512Int32(Vector256.Load(p));
        var abs = v & Vector512.Create(0x7FFF);
        var normal = ((abs << 13) + Vector512.Create(112 << 23)).AsSingle();
        var subnormal = Vector512.ConvertToSingle(abs) * Vector512.Create(5.9604645E-08f); // m * 2^-24
        var r = Vector512.ConditionalSelect(Vector512.LessThan(abs, Vector512.Create(0x400)).AsSingle(), subnormal, normal);
        return (r.AsInt32() | ((v & Vector512.Create(0x8000)) << 16)).AsSingle();
    }

    /// <summary>Eight halves (zero-extended in int32 lanes) to floats, as <see cref="ToFloatFast"/>: exact, no denormals formed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ToFloatFast8(Vector256<int> h)
    {
        var abs = h & Vector256.Create(0x7FFF);
        var normal = ((abs << 13) + Vector256.Create(112 << 23)).AsSingle();
        var subnormal = Vector256.ConvertToSingle(abs) * Vector256.Create(5.9604645E-08f); // m * 2^-24
        var r = Vector256.ConditionalSelect(Vector256.LessThan(abs, Vector256.Create(0x400)).AsSingle(), subnormal, normal);
        return (r.AsInt32() | ((h & Vector256.Create(0x8000)) << 16)).AsSingle();
    }

    /// <summary>bfloat16 is the upper half of a float.</summary>
    public static float BF16ToFloat(ushort b) => BitConverter.Int32BitsToSingle(b << 16);

    /// <summary>Round-to-nearest-even, NaN kept quiet, as ggml's GGML_FP32_TO_BF16.</summary>
    public static ushort FloatToBF16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7fffffff) > 0x7f800000) return (ushort)((u >> 16) | 64);
        return (ushort)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
    }
}
