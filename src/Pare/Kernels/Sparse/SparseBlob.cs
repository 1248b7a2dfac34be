using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Pare.Tensors;

namespace Pare.Kernels.Sparse;

/// <summary>
/// What the two compact sparse formats (<see cref="SparseMatrix"/>, <see cref="RowGroupSparseMatrix"/>) share: the
/// blob header's first five words (magic, version, value type, rows, cols), the u64 offset table after the header,
/// the checks on that table, and the shape checks of a product.
/// </summary>
internal static unsafe class SparseBlob
{
    /// <summary>Writes magic, version, value type, rows and cols at 0..20 and the offset table at <paramref name="headerBytes"/>.</summary>
    internal static void WriteHeader(Span<byte> h, uint magic, uint version, GgmlType type, int rows, int cols, int headerBytes, long[] offsets)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(h, magic);
        BinaryPrimitives.WriteUInt32LittleEndian(h[4..], version);
        BinaryPrimitives.WriteUInt32LittleEndian(h[8..], (uint)type);
        BinaryPrimitives.WriteUInt32LittleEndian(h[12..], (uint)rows);
        BinaryPrimitives.WriteUInt32LittleEndian(h[16..], (uint)cols);
        MemoryMarshal.AsBytes(offsets.AsSpan()).CopyTo(h[headerBytes..]);
    }

    /// <summary>
    /// Checks that an offset table of <paramref name="entries"/> + 1 offsets after a header of
    /// <paramref name="headerBytes"/> fits in the blob; throws <paramref name="bad"/>("<paramref name="what"/> is truncated").
    /// </summary>
    internal static void CheckTableFits(long byteLength, int headerBytes, long entries, string what, Func<string, InvalidModelException> bad)
    {
        if (byteLength < headerBytes + 8L * (entries + 1)) throw bad($"{what} is truncated");
    }

    /// <summary>Checks that the first entry starts right after the table (<paramref name="unit"/>: "row" or "group").</summary>
    internal static void CheckFirstOffset(long* off, int headerBytes, long entries, string unit, Func<string, InvalidModelException> bad)
    {
        if (off[0] != headerBytes + 8L * (entries + 1)) throw bad($"first {unit} does not follow the offset table");
    }

    /// <summary>Checks that the blob ends with exactly <paramref name="tailPadding"/> bytes after the last entry.</summary>
    internal static void CheckTail(long* off, long entries, int tailPadding, long byteLength, Func<string, InvalidModelException> bad)
    {
        if (off[entries] + tailPadding != byteLength) throw bad($"blob does not end with exactly {tailPadding} bytes of padding");
    }

    /// <summary>The shape checks of Y = W X for <paramref name="n"/> tokens.</summary>
    internal static void CheckProduct(int rows, int cols, ReadOnlySpan<float> x, int n, Span<float> y)
    {
        if (x.Length < (long)n * cols) throw new ArgumentException($"x has {x.Length} values, needs {n} x {cols}", nameof(x));
        if (y.Length < (long)n * rows) throw new ArgumentException($"y has {y.Length} values, needs {n} x {rows}", nameof(y));
    }
}
