using System.Buffers.Binary;
using Pare.Formats.Gguf;
using Pare.Kernels;
using Pare.Kernels.Sparse;

namespace Pare.Pruning;

/// <summary>
/// Converting a pruned GGUF between the dense layout (zeros stored, any GGUF reader loads it) and Pare's compact
/// bitmask format (<see cref="SparseMatrix"/>, Pare only). Both directions refuse a file that has nothing to convert,
/// so no copy is written that the user did not need. The output appears only when complete.
/// </summary>
public static class CompactFormat
{
    /// <summary>Whether a GGUF stores matrices in the compact format.</summary>
    public static bool IsCompact(GgufFile f) => f.Has(SparseMatrix.FormatKey);

    /// <summary>The matrix a tensor holds in the compact format, or null for a normal tensor.</summary>
    public static SparseMatrix? Matrix(GgufFile f, GgufTensorInfo t)
    {
        if (!IsCompact(f) || t.Type != SparseMatrix.StorageType || t.Dims.Length != 1 || t.ByteSize < SparseMatrix.HeaderBytes) return null;
        var head = f.TensorBytes(t)[..SparseMatrix.HeaderBytes];
        if (BinaryPrimitives.ReadUInt32LittleEndian(head) != SparseMatrix.Magic) return null;
        int rows = (int)BinaryPrimitives.ReadUInt32LittleEndian(head[12..]), cols = (int)BinaryPrimitives.ReadUInt32LittleEndian(head[16..]);
        return SparseMatrix.Open(t.Name, f.TensorAddress(t), t.ByteSize, rows, cols);
    }

    /// <summary>The matrix a tensor holds in the row-group compact format, or null.</summary>
    public static RowGroupSparseMatrix? RowGroupMatrix(GgufFile f, GgufTensorInfo t)
    {
        if (!IsCompact(f) || t.Type != SparseMatrix.StorageType || t.Dims.Length != 1 || t.ByteSize < RowGroupSparseMatrix.HeaderBytes) return null;
        var head = f.TensorBytes(t)[..RowGroupSparseMatrix.HeaderBytes];
        if (BinaryPrimitives.ReadUInt32LittleEndian(head) != RowGroupSparseMatrix.Magic) return null;
        int rows = (int)BinaryPrimitives.ReadUInt32LittleEndian(head[12..]), cols = (int)BinaryPrimitives.ReadUInt32LittleEndian(head[16..]);
        return RowGroupSparseMatrix.Open(t.Name, f.TensorAddress(t), t.ByteSize, rows, cols);
    }

    /// <summary>The line that explains a compact file to a command that needs dense matrices.</summary>
    public static string Explain(string path) =>
        $"{path} is in Pare's compact sparse format (bitmask + packed non-zeros, written by --sparse-format bitmask or --repack): " +
        $"its matrices are already pruned; prune the dense original instead, or write a dense copy with 'pare prune {path} --repack -o DENSE.gguf'";

    /// <summary>Rewrites a pruned dense GGUF with its block matrices compact (where that is smaller). Returns the matrices converted.</summary>
    public static int Pack(string src, string dst) => Pack(src, dst, 0);

    /// <summary>
    /// <see cref="Pack(string, string)"/>; <paramref name="groupRows"/> &gt; 0 writes F16 and Q8_0 matrices in the row-group
    /// format (<see cref="RowGroupSparseMatrix"/>: one column mask per that many rows; for files pruned with --row-group).
    /// </summary>
    public static int Pack(string src, string dst, int groupRows)
    {
        using (var f = GgufFile.Open(src))
            if (IsCompact(f)) throw new PareException($"{src} is already in Pare's compact sparse format");
        string tmp = dst + ".pack-" + Environment.ProcessId;
        try
        {
            int n = SparseGguf.Repack(src, tmp, groupRows);
            if (n == 0) throw new PareException($"{src}: no block matrix has enough zeros to store compactly (is the model pruned?); nothing written");
            File.Move(tmp, dst, overwrite: true);
            return n;
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>
    /// Writes a dense copy of a compact GGUF: every compact matrix decoded and stored in its value type again (F32 and F16
    /// bit for bit; Q8_0 re-quantized from the decoded values, which gives back the same scales and quants for matrices the
    /// pruner wrote). Returns the matrices converted.
    /// </summary>
    public static int Unpack(string src, string dst, CancellationToken ct = default)
    {
        using var f = GgufFile.Open(src);
        if (!IsCompact(f)) throw new PareException($"{src} is not in Pare's compact sparse format: it is dense already");
        var w = new GgufWriter { Alignment = f.Alignment };
        foreach (var (k, v) in f.MetadataList) if (k != SparseMatrix.FormatKey && k != RowGroupSparseMatrix.GroupKey) w.Set(k, v);
        int converted = 0;
        foreach (var t in f.Tensors)
        {
            ct.ThrowIfCancellationRequested();
            var info = t;
            if (RowGroupMatrix(f, t) is { } g)
            {
                var dense = new float[(long)g.Rows * g.Cols];
                for (int r = 0; r < g.Rows; r++) g.DecodeRow(r, dense.AsSpan(r * g.Cols, g.Cols));
                w.AddTensor(t.Name, g.ValueType, [g.Cols, g.Rows], Quantizer.Quantize(g.ValueType, dense));
                converted++;
                continue;
            }
            if (Matrix(f, t) is not { } m) { w.AddTensor(t.Name, t.Type, t.Dims, s => s.Write(f.TensorBytes(info))); continue; }
            int rows = m.Rows, cols = m.Cols;
            var values = new float[(long)rows * cols];
            for (int r = 0; r < rows; r++) m.DecodeRow(r, values.AsSpan(r * cols, cols));
            w.AddTensor(t.Name, m.ValueType, [cols, rows], Quantizer.Quantize(m.ValueType, values));
            converted++;
        }
        w.Write(dst);
        return converted;
    }
}
