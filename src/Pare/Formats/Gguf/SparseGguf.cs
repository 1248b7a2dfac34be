using Pare.Kernels.Sparse;
using Pare.Kernels;
using Pare.Tensors;

namespace Pare.Formats.Gguf;

/// <summary>The loader hook: a GGUF tensor holding a <see cref="SparseMatrix"/> blob becomes a sparse <see cref="WeightMatrix"/>.</summary>
public static class SparseGguf
{
    /// <summary>The matrix <paramref name="name"/> when the file stores it compactly; null when it is a normal tensor.</summary>
    public static WeightMatrix? TryMatrix(GgufFile f, string name, int rows, int cols)
    {
        if (!f.Has(SparseMatrix.FormatKey) || !f.TryGetTensor(name, out var t) || t.Type != SparseMatrix.StorageType || t.Dims.Length != 1) return null;
        // Row-group blobs (pare.sparse.format = "rowgroup") carry their own magic; "bitmask" files load as before.
        if (RowGroupSparseMatrix.HasMagic(f.TensorAddress(t), t.ByteSize))
            return new WeightMatrix(name, rows, cols, RowGroupSparseMatrix.Open(name, f.TensorAddress(t), t.ByteSize, rows, cols));
        var m = SparseMatrix.Open(name, f.TensorAddress(t), t.ByteSize, rows, cols);
        return new WeightMatrix(name, rows, cols, m);
    }

    /// <summary>
    /// Rewrites an already-pruned GGUF with its block matrices (blk.*.weight, 2-D, F32/F16/Q8_0) in the compact format
    /// wherever that is smaller than the dense bytes; everything else is copied. Returns the matrices converted.
    /// </summary>
    public static int Repack(string src, string dst) => Repack(src, dst, 0);

    /// <summary>
    /// <see cref="Repack(string, string)"/>; with <paramref name="groupRows"/> &gt; 0 the F16 and Q8_0 block matrices are
    /// written in the row-group format (<see cref="RowGroupSparseMatrix"/>, one mask per that many rows; the file says
    /// <c>pare.sparse.format = "rowgroup"</c>), other types in the bitmask format.
    /// </summary>
    public static int Repack(string src, string dst, int groupRows)
    {
        using var f = GgufFile.Open(src);
        var w = new GgufWriter { Alignment = f.Alignment };
        foreach (var (k, v) in f.MetadataList) w.Set(k, v);
        w.Set(SparseMatrix.FormatKey, groupRows > 0 ? RowGroupSparseMatrix.FormatValue : "bitmask");
        if (groupRows > 0) w.Set(RowGroupSparseMatrix.GroupKey, (uint)groupRows);
        int converted = 0;
        foreach (var t in f.Tensors)
        {
            var info = t;
            if (groupRows > 0 && t.Name.StartsWith("blk.", StringComparison.Ordinal) && t.Dims.Length == 2 && RowGroupSparseMatrix.CanEncode(t.Type, (int)t.Dims[0]))
            {
                var blob = RowGroupSparseMatrix.Encode(t.Type, (int)t.Dims[1], (int)t.Dims[0], groupRows, f.TensorBytes(t));
                if (blob.Length < t.ByteSize)
                {
                    w.AddTensor(t.Name, SparseMatrix.StorageType, [blob.Length], blob);
                    converted++;
                    continue;
                }
            }
            if (t.Name.StartsWith("blk.", StringComparison.Ordinal) && t.Dims.Length == 2 && SparseMatrix.CanEncode(t.Type, (int)t.Dims[1], (int)t.Dims[0], f.TensorBytes(t)))
            {
                var blob = SparseMatrix.Encode(t.Type, (int)t.Dims[1], (int)t.Dims[0], f.TensorBytes(t));
                if (blob.Length < t.ByteSize)
                {
                    w.AddTensor(t.Name, SparseMatrix.StorageType, [blob.Length], blob);
                    converted++;
                    continue;
                }
            }
            w.AddTensor(t.Name, t.Type, t.Dims, s => s.Write(f.TensorBytes(info)));
        }
        w.Write(dst);
        return converted;
    }
}
