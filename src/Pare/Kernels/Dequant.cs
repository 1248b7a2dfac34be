using Pare.Kernels.Formats;
using Pare.Tensors;

namespace Pare.Kernels;

/// <summary>Scalar reference dequantization of one row of any supported type to F32 (ggml's exact bit layouts).</summary>
public static class Dequant
{
    /// <summary>Decodes <c>dst.Length</c> values (a whole number of blocks) from <paramref name="src"/>.</summary>
    public static void Row(GgmlType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        long need = GgmlTypeInfo.RowBytes(type, dst.Length);
        if (src.Length < need) throw new ArgumentException($"{type} row of {dst.Length} values needs {need} bytes, got {src.Length}", nameof(src));
        switch (type)
        {
            case GgmlType.F32: F32Format.DequantRow(src, dst); break;
            case GgmlType.F16: F16Format.DequantRow(src, dst); break;
            case GgmlType.BF16: BF16Format.DequantRow(src, dst); break;
            case GgmlType.Q8_0: Q8_0Format.DequantRow(src, dst); break;
            case GgmlType.Q4_0: Q4_0Format.DequantRow(src, dst); break;
            case GgmlType.Q4_K: Q4KFormat.DequantRow(src, dst); break;
            case GgmlType.Q6_K: Q6KFormat.DequantRow(src, dst); break;
            default: throw new NotSupportedException($"dequantization of {type}");
        }
    }
}
