using Pare.Tensors;

namespace Pare.Kernels;

/// <summary>Scalar reference dequantization of one row of any supported type to F32.</summary>
public static class Dequant
{
    public static void Row(GgmlType type, ReadOnlySpan<byte> src, Span<float> dst) =>
        throw new NotImplementedException($"dequantization of {type}");
}
