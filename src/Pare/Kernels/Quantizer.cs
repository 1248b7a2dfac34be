using Pare.Kernels.Formats;
using Pare.Tensors;

namespace Pare.Kernels;

/// <summary>Encodes F32 values (whole rows of whole blocks) into a stored type.</summary>
public static class Quantizer
{
    /// <summary>
    /// F32/F16/BF16 round to nearest even; Q8_0 and Q4_0 match ggml's reference quantizers bit for bit; Q4_K and
    /// Q6_K use simpler (non-iterative) scale choices than ggml, fine for tests but not for shipping models.
    /// </summary>
    public static byte[] Quantize(GgmlType type, ReadOnlySpan<float> src)
    {
        int bs = GgmlTypeInfo.BlockSize(type);
        if (bs == 0 || src.Length % bs != 0)
            throw new ArgumentException($"{src.Length} values are not a whole number of {type} blocks", nameof(src));
        return type switch
        {
            GgmlType.F32 => F32Format.Quantize(src),
            GgmlType.F16 => F16Format.Quantize(src),
            GgmlType.BF16 => BF16Format.Quantize(src),
            GgmlType.Q8_0 => Q8_0Format.Quantize(src),
            GgmlType.Q4_0 => Q4_0Format.Quantize(src),
            GgmlType.Q4_K => Q4KFormat.Quantize(src),
            GgmlType.Q6_K => Q6KFormat.Quantize(src),
            _ => throw new NotSupportedException($"quantization to {type}"),
        };
    }
}
