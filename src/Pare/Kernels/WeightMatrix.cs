using Pare.Kernels.Sparse;
using Pare.Tensors;

namespace Pare.Kernels;

/// <summary>
/// A 2-D weight in its stored type: <see cref="Rows"/> rows of <see cref="Cols"/> values, row-major, each row
/// <see cref="RowBytes"/> bytes (ggml's ne0 = Cols is the contiguous dimension; y = W x reads one row per output).
/// The bytes usually live in a memory-mapped file owned by the model; this type does not own them.
/// </summary>
public sealed class WeightMatrix
{
    public WeightMatrix(string name, GgmlType type, int rows, int cols, nint data, long byteLength)
    {
        if (!GgmlTypeInfo.IsSupportedWeight(type))
            throw new InvalidModelException($"tensor '{name}' has type {type}, which Pare cannot compute with yet");
        long rowBytes = GgmlTypeInfo.RowBytes(type, cols);
        if (rows <= 0 || cols <= 0 || rowBytes * rows != byteLength)
            throw new InvalidModelException($"tensor '{name}' has {byteLength} bytes, expected {rowBytes * rows} for [{rows} x {cols}] {type}");
        Name = name; Type = type; Rows = rows; Cols = cols; Data = data; RowBytes = (int)rowBytes; ByteLength = byteLength;
    }

    /// <summary>A matrix stored in Pare's compact sparse format: products dispatch to its own kernels.</summary>
    public WeightMatrix(string name, int rows, int cols, SparseMatrix sparse)
    {
        Name = name; Type = sparse.ValueType; Rows = rows; Cols = cols; Data = sparse.Data; ByteLength = sparse.ByteLength; Sparse = sparse;
    }

    /// <summary>The compact sparse storage when the matrix has one (then <see cref="Row"/> is not available).</summary>
    public SparseMatrix? Sparse { get; }

    /// <summary>A matrix stored in Pare's row-group compact format (one column mask per group of rows): products dispatch to its own kernels.</summary>
    public WeightMatrix(string name, int rows, int cols, RowGroupSparseMatrix rowGroup)
    {
        Name = name; Type = rowGroup.ValueType; Rows = rows; Cols = cols; Data = rowGroup.Data; ByteLength = rowGroup.ByteLength; RowGroup = rowGroup;
    }

    /// <summary>The row-group compact storage when the matrix has one (then <see cref="Row"/> is not available).</summary>
    public RowGroupSparseMatrix? RowGroup { get; }

    public string Name { get; }
    public GgmlType Type { get; }
    /// <summary>Output features (ggml ne1).</summary>
    public int Rows { get; }
    /// <summary>Input features (ggml ne0), the contiguous dimension.</summary>
    public int Cols { get; }
    /// <summary>Address of the first byte of row 0.</summary>
    public nint Data { get; }
    public int RowBytes { get; }
    public long ByteLength { get; }

    /// <summary>
    /// The data may change between products (a matrix being pruned): kernels must not cache copies derived from it.
    /// Set it on a matrix over memory you write to; matrices of a loaded model are read-only (default false), and
    /// narrow F32 ones get a cached panel copy for faster products.
    /// </summary>
    public bool Mutable { get; init; }

    F32Panels? _panels;

    /// <summary>Derived data the decode kernels cache for this matrix (the F16 subnormal map); not used when <see cref="Mutable"/>.</summary>
    internal object? KernelCache;

    /// <summary>The F32 panel copy for products with a few tokens, built on first use (null when it does not apply).</summary>
    internal F32Panels? Panels =>
        F32Panels.Applies(this) ? LazyInitializer.EnsureInitialized(ref _panels, () => F32Panels.Pack(this)) : null;

    /// <summary>The stored bytes of one row.</summary>
    public unsafe ReadOnlySpan<byte> Row(int r) => new((byte*)Data + (long)r * RowBytes, RowBytes);
}
