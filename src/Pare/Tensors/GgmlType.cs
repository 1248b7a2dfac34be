namespace Pare.Tensors;

/// <summary>Tensor element types, numbered as in ggml (the numbers are stored in GGUF files).</summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
}

/// <summary>Block geometry of each type: a row of <c>n</c> values takes <c>n / BlockSize * BlockBytes</c> bytes.</summary>
public static class GgmlTypeInfo
{
    /// <summary>Values per block (1 for plain floats).</summary>
    public static int BlockSize(GgmlType t) => t switch
    {
        GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.I8 or GgmlType.I16 or GgmlType.I32 or GgmlType.I64 or GgmlType.F64 => 1,
        GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1 or GgmlType.Q8_0 or GgmlType.Q8_1 or GgmlType.IQ4_NL => 32,
        GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K or GgmlType.Q8_K => 256,
        GgmlType.IQ2_XXS or GgmlType.IQ2_XS or GgmlType.IQ3_XXS or GgmlType.IQ1_S or GgmlType.IQ3_S or GgmlType.IQ2_S
            or GgmlType.IQ4_XS or GgmlType.IQ1_M or GgmlType.TQ1_0 or GgmlType.TQ2_0 => 256,
        _ => 0,
    };

    /// <summary>Bytes per block; 0 for a type number Pare does not know.</summary>
    public static int BlockBytes(GgmlType t) => t switch
    {
        GgmlType.F32 => 4,
        GgmlType.F16 => 2,
        GgmlType.BF16 => 2,
        GgmlType.I8 => 1,
        GgmlType.I16 => 2,
        GgmlType.I32 => 4,
        GgmlType.I64 => 8,
        GgmlType.F64 => 8,
        GgmlType.Q4_0 => 2 + 16,
        GgmlType.Q4_1 => 4 + 16,
        GgmlType.Q5_0 => 2 + 4 + 16,
        GgmlType.Q5_1 => 4 + 4 + 16,
        GgmlType.Q8_0 => 2 + 32,
        GgmlType.Q8_1 => 4 + 32,
        GgmlType.Q2_K => 256 / 16 + 256 / 4 + 2 + 2,
        GgmlType.Q3_K => 256 / 8 + 256 / 4 + 12 + 2,
        GgmlType.Q4_K => 2 + 2 + 12 + 256 / 2,
        GgmlType.Q5_K => 2 + 2 + 12 + 256 / 8 + 256 / 2,
        GgmlType.Q6_K => 256 / 2 + 256 / 4 + 256 / 16 + 2,
        GgmlType.Q8_K => 4 + 256 + 16 * 2,
        GgmlType.IQ4_NL => 2 + 16,
        GgmlType.IQ4_XS => 2 + 2 + 4 + 128,
        GgmlType.IQ2_XXS => 2 + 64,
        GgmlType.IQ2_XS => 2 + 64 + 8,
        GgmlType.IQ2_S => 2 + 64 + 16,
        GgmlType.IQ3_XXS => 2 + 96,
        GgmlType.IQ3_S => 2 + 64 + 32 + 8 + 4,
        GgmlType.IQ1_S => 2 + 32 + 16,
        GgmlType.IQ1_M => 32 + 16 + 8,
        GgmlType.TQ1_0 => 2 + 48 + 4,
        GgmlType.TQ2_0 => 2 + 64,
        _ => 0,
    };

    /// <summary>Whether Pare's kernels can compute with weights of this type.</summary>
    public static bool IsSupportedWeight(GgmlType t) => t is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16
        or GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q4_K or GgmlType.Q6_K;

    /// <summary>Bytes of one row of <paramref name="n"/> values; throws if n is not a whole number of blocks.</summary>
    public static long RowBytes(GgmlType t, long n)
    {
        int bs = BlockSize(t);
        if (bs == 0) throw new InvalidModelException($"unknown tensor type {(uint)t}");
        if (n % bs != 0) throw new InvalidModelException($"row of {n} values is not a multiple of the {t} block size {bs}");
        return n / bs * BlockBytes(t);
    }
}
