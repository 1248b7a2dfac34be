using Pare.Tensors;

namespace Pare.Kernels;

/// <summary>Encodes F32 values (whole rows of whole blocks) into a stored type.</summary>
public static class Quantizer
{
    public static byte[] Quantize(GgmlType type, ReadOnlySpan<float> src) =>
        throw new NotImplementedException($"quantization to {type}");
}
