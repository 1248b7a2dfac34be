using Pare.Formats.Gguf;
using Pare.Tensors;

namespace Pare.Kernels.Sparse;

/// <summary>The loader hook: a GGUF tensor holding a <see cref="SparseMatrix"/> blob becomes a sparse <see cref="WeightMatrix"/>.</summary>
public static class SparseGguf
{
    /// <summary>The matrix <paramref name="name"/> when the file stores it compactly; null when it is a normal tensor.</summary>
    public static WeightMatrix? TryMatrix(GgufFile f, string name, int rows, int cols)
    {
        if (!f.Has(SparseMatrix.FormatKey) || !f.TryGetTensor(name, out var t) || t.Type != SparseMatrix.StorageType || t.Dims.Length != 1) return null;
        var m = SparseMatrix.Open(name, f.TensorAddress(t), t.ByteSize, rows, cols);
        return new WeightMatrix(name, rows, cols, m);
    }
}
