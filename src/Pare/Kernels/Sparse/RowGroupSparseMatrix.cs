using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using Pare.Tensors;

namespace Pare.Kernels.Sparse;

/// <summary>
/// Pare's row-group compact storage of a pruned weight matrix: every group of <see cref="GroupRows"/> consecutive rows
/// shares ONE column mask (a column is stored when any row of the group has a non-zero there), and each row of the
/// group stores its values at the mask's columns packed densely, zero-padded to a multiple of 32. The packed rows of a
/// group are then an ordinary dense F16 or Q8_0 matrix of width K (the group's padded count), so a product compresses
/// x once per group by the mask and runs the dense kernels on K columns: work per stored value, not per dense column
/// (<see cref="RowGroupSparseMatMul"/>). Pruners that keep the same columns for all rows of a group
/// (<c>pare prune --row-group G</c>) lose nothing to the shared mask.
/// <para>F16 values are the dense matrix's halves bit for bit. Q8_0 values are re-quantized: the packed values (each
/// the dense quant times its block scale) are rounded to int8 in blocks of 32 packed entries with their own f16 scale
/// (max |v| / 127, as llama.cpp's quantize_row_q8_0), so a Q8_0 row differs from the dense one by that rounding.</para>
/// <para>Stored in a GGUF file as a 1-D tensor of type I8 under the matrix's own name (the file carries
/// <c>pare.sparse.format = "rowgroup"</c>; old <c>"bitmask"</c> files hold <see cref="SparseMatrix"/> blobs and load as
/// before). Version 2 lays a group out as ONE contiguous stream in the order the decode kernel reads it (version 1
/// stored the rows one after another, which four-row kernels read as four short streams, 8-9 GB/s from DRAM). Blob
/// layout, little-endian:</para>
/// <code>
///  0  u32  magic "PSPG" (0x47505350)
///  4  u32  version = 2
///  8  u32  value type (ggml number: F16 = 1, Q8_0 = 8)
/// 12  u32  rows
/// 16  u32  cols (a multiple of 32)
/// 20  u32  group rows G (1..64)
/// 24  u32  groups = ceil(rows / G)
/// 28  u32  reserved = 0
/// 32  u64  group offsets [groups + 1], from the start of the blob; group g is [off[g], off[g + 1])
///     groups: u32 masks [cols / 32] in lane order (<see cref="LaneBit"/>: bit j of word b = column 32 b + 2 j,
///             bit 16 + j = column 32 b + 2 j + 1, so one 32-bit broadcast tests 32 16-bit lanes),
///             u32 count (the masks' set bits), u32 reserved = 0, zeros up to a multiple of 64 bytes;
///             then the group's rows (G, the last group rows - G (groups - 1)), each of K = count rounded up to 32
///             packed columns, in quads of four rows (the last quad of a group may have m &lt; 4) interleaved by
///             block of 32 columns: quad q, block b holds its m rows' block b one after another.
///             F16 block: 64 bytes of halves interleaved (v0, v16, v1, v17, ..., v15, v31: the dense F16 kernel
///             converts the even and the odd halves apart, so packed x needs no split).
///             Q8_0 block of a quad: the m rows' f16 scales (2 m bytes), then their m x 32 int8 quants.
///             Padding columns hold zero values
///     64 zero bytes of padding after the last group
/// </code>
/// </summary>
public sealed unsafe class RowGroupSparseMatrix
{
    public const uint Magic = 0x47505350;
    public const uint Version = 2;
    public const int HeaderBytes = 32;
    public const int TailPadding = 64;
    /// <summary>Largest group accepted.</summary>
    public const int MaxGroupRows = 64;
    /// <summary>The value of <see cref="SparseMatrix.FormatKey"/> in a file holding row-group blobs.</summary>
    public const string FormatValue = "rowgroup";
    /// <summary>GGUF metadata key with the group rows the file was written with (informative; each blob carries its own).</summary>
    public const string GroupKey = "pare.sparse.row_group";

    RowGroupSparseMatrix(GgmlType valueType, int rows, int cols, int groupRows, nint data, long byteLength)
    {
        ValueType = valueType; Rows = rows; Cols = cols; GroupRows = groupRows; Data = data; ByteLength = byteLength;
    }

    public GgmlType ValueType { get; }
    public int Rows { get; }
    public int Cols { get; }
    public int GroupRows { get; }
    public int Groups => (Rows + GroupRows - 1) / GroupRows;
    public nint Data { get; }
    public long ByteLength { get; }
    public int Blocks => Cols / 32;

    internal long* Offsets => (long*)((byte*)Data + HeaderBytes);
    internal byte* GroupPtr(int g) => (byte*)Data + Offsets[g];

    /// <summary>Bytes of a group's header: the masks, the count and a reserved word, padded to 64 (rows start on a cache line).</summary>
    internal static int GroupHeaderBytes(int cols) => (cols / 32 * 4 + 8 + 63) & ~63;

    /// <summary>Bit of a mask word that holds column <paramref name="i"/> (0..31) of its block: lane order of 16-bit lanes of a broadcast word.</summary>
    internal static int LaneBit(int i) => (i & 1) == 0 ? i >> 1 : 16 + (i >> 1);

    /// <summary>Whether mask word <paramref name="m"/> keeps column <paramref name="i"/> (0..31) of its block.</summary>
    internal static bool Keeps(uint m, int i) => (m >> LaneBit(i) & 1) != 0;

    /// <summary>Bytes of one block of 32 packed columns of one row (Q8_0: scale and quants).</summary>
    internal static int BlockBytes(GgmlType t) => t == GgmlType.F16 ? 64 : 34;

    /// <summary>
    /// Where row <paramref name="i"/> of a group of <paramref name="nr"/> rows stores block <paramref name="b"/> of its
    /// <paramref name="k"/> packed columns, from the start of the group's rows: its values (F16 halves, Q8_0 quants)
    /// and (Q8_0) its f16 scale.
    /// </summary>
    internal static (long Values, long Scale) BlockAt(GgmlType t, int nr, int k, int i, int b)
    {
        int q = i >> 2, l = i & 3, m = Math.Min(4, nr - 4 * q), bb = BlockBytes(t);
        long block = 4L * q * (k / 32) * bb + (long)b * m * bb;
        return t == GgmlType.F16 ? (block + 64L * l, 0) : (block + 2 * m + 32L * l, block + 2L * l);
    }

    /// <summary>Columns of the packed rows for <paramref name="count"/> stored columns: rounded up to 32.</summary>
    public static int PaddedCount(int count) => (count + 31) & ~31;

    /// <summary>Bytes of one packed row of <paramref name="k"/> (a multiple of 32) columns.</summary>
    internal static long PackedRowBytes(GgmlType t, int k) => t == GgmlType.F16 ? 2L * k : k / 32 * 34L;

    /// <summary>Whether dense rows of this type and width can be stored in this format.</summary>
    public static bool CanEncode(GgmlType type, int cols) => type is GgmlType.F16 or GgmlType.Q8_0 && cols % 32 == 0 && cols > 0;

    /// <summary>Whether a blob starts with this format's magic (a row-group blob, not a <see cref="SparseMatrix"/> one).</summary>
    public static bool HasMagic(nint data, long length) => length >= 4 && *(uint*)data == Magic;

    /// <summary>The dense matrix's value at (r, c) as F32 (F16 exactly; Q8_0 quant times block scale).</summary>
    static float DenseValue(GgmlType type, ReadOnlySpan<byte> row, int c) => type == GgmlType.F16
        ? Fp16.ToFloat(BinaryPrimitives.ReadUInt16LittleEndian(row[(c * 2)..]))
        : (sbyte)row[c / 32 * 34 + 2 + c % 32] * Fp16.ToFloat(BinaryPrimitives.ReadUInt16LittleEndian(row[(c / 32 * 34)..]));

    static bool DenseNonZero(GgmlType type, ReadOnlySpan<byte> row, int c) => type == GgmlType.F16
        ? (BinaryPrimitives.ReadUInt16LittleEndian(row[(c * 2)..]) & 0x7FFF) != 0
        : row[c / 32 * 34 + 2 + c % 32] != 0 && (BinaryPrimitives.ReadUInt16LittleEndian(row[(c / 32 * 34)..]) & 0x7FFF) != 0;

    /// <summary>
    /// Rounds 32 packed values to Q8_0 as llama.cpp's quantize_row_q8_0_ref: d = max |v| / 127 (stored as f16),
    /// q = round(v / d) (half away from zero), never -128.
    /// </summary>
    internal static void QuantizeBlock(ReadOnlySpan<float> v, Span<byte> dst)
    {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = MathF.Max(amax, MathF.Abs(v[i]));
        float d = amax / 127, id = d != 0 ? 1 / d : 0;
        BinaryPrimitives.WriteUInt16LittleEndian(dst, Fp16.FromFloat(d));
        for (int i = 0; i < 32; i++) dst[2 + i] = (byte)(sbyte)Math.Clamp(MathF.Round(v[i] * id, MidpointRounding.AwayFromZero), -127, 127);
    }

    /// <summary>
    /// Encodes a dense F16 or Q8_0 matrix (its stored bytes) with <paramref name="groupRows"/> rows per shared mask.
    /// A column is kept in a group when any of its rows is non-zero there.
    /// </summary>
    public static byte[] Encode(GgmlType type, int rows, int cols, int groupRows, ReadOnlySpan<byte> dense)
    {
        if (!CanEncode(type, cols)) throw new ArgumentException($"cannot store {type} rows of {cols} in the row-group format");
        if (groupRows < 1 || groupRows > MaxGroupRows) throw new ArgumentException($"group rows must be in 1..{MaxGroupRows} (got {groupRows})", nameof(groupRows));
        if (rows < 1) throw new ArgumentException("a matrix needs at least one row", nameof(rows));
        long rowBytes = GgmlTypeInfo.RowBytes(type, cols);
        if (dense.Length < rowBytes * rows) throw new ArgumentException("dense data is shorter than the matrix", nameof(dense));
        int nb = cols / 32, groups = (rows + groupRows - 1) / groupRows;
        var masks = new uint[groups * nb];
        var counts = new int[groups];
        var offsets = new long[groups + 1];
        long pos = HeaderBytes + 8L * (groups + 1);
        for (int g = 0; g < groups; g++)
        {
            int r0 = g * groupRows, r1 = Math.Min(rows, r0 + groupRows);
            for (int r = r0; r < r1; r++)
            {
                var src = dense.Slice((int)(r * rowBytes), (int)rowBytes);
                for (int c = 0; c < cols; c++) if (DenseNonZero(type, src, c)) masks[g * nb + c / 32] |= 1u << LaneBit(c % 32);
            }
            int count = 0;
            for (int b = 0; b < nb; b++) count += BitOperations.PopCount(masks[g * nb + b]);
            counts[g] = count;
            offsets[g] = pos;
            pos += GroupHeaderBytes(cols) + (r1 - r0) * PackedRowBytes(type, PaddedCount(count));
        }
        offsets[groups] = pos;
        var blob = new byte[pos + TailPadding];
        var h = blob.AsSpan();
        SparseBlob.WriteHeader(h, Magic, Version, type, rows, cols, HeaderBytes, offsets);
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], (uint)groupRows);
        BinaryPrimitives.WriteUInt32LittleEndian(h[24..], (uint)groups);
        var packed = new float[PaddedCount(cols)];
        var halves = new ushort[PaddedCount(cols)];
        Span<byte> q8 = stackalloc byte[34];
        for (int g = 0; g < groups; g++)
        {
            int r0 = g * groupRows, r1 = Math.Min(rows, r0 + groupRows);
            var dst = h[(int)offsets[g]..(int)offsets[g + 1]];
            MemoryMarshal.AsBytes(masks.AsSpan(g * nb, nb)).CopyTo(dst);
            BinaryPrimitives.WriteUInt32LittleEndian(dst[(nb * 4)..], (uint)counts[g]);
            int k = PaddedCount(counts[g]);
            var rowsDst = dst[GroupHeaderBytes(cols)..];
            for (int r = r0; r < r1; r++)
            {
                var src = dense.Slice((int)(r * rowBytes), (int)rowBytes);
                int at = 0;
                for (int c = 0; c < cols; c++)
                {
                    if (!Keeps(masks[g * nb + c / 32], c % 32)) continue;
                    if (type == GgmlType.F16) halves[at] = BinaryPrimitives.ReadUInt16LittleEndian(src[(c * 2)..]);
                    packed[at++] = DenseValue(type, src, c);
                }
                packed.AsSpan(at, k - at).Clear();
                halves.AsSpan(at, k - at).Clear();
                for (int b = 0; b < k / 32; b++)
                {
                    var (values, scale) = BlockAt(type, r1 - r0, k, r - r0, b);
                    if (type == GgmlType.F16)
                    {
                        // The dense halves bit for bit, interleaved per 32 (F16Slot).
                        for (int i = 0; i < 32; i++)
                            BinaryPrimitives.WriteUInt16LittleEndian(rowsDst[(int)(values + 2 * F16Slot(i))..], halves[32 * b + i]);
                        continue;
                    }
                    QuantizeBlock(packed.AsSpan(b * 32, 32), q8);
                    q8[..2].CopyTo(rowsDst[(int)scale..]);
                    q8[2..].CopyTo(rowsDst[(int)values..]);
                }
            }
        }
        return blob;
    }

    /// <summary>
    /// Reads and fully validates a blob: header, group offsets, every group's count against its masks and its length
    /// against the count, zero padding columns (F16) and no -128 quant (Q8_0), so a corrupt or hostile file cannot make
    /// a kernel read outside it or add a padding column's garbage.
    /// </summary>
    public static RowGroupSparseMatrix Open(string name, nint data, long byteLength, int rows, int cols)
    {
        byte* p = (byte*)data;
        InvalidModelException Bad(string what) => new($"row-group sparse tensor '{name}': {what}");
        if (byteLength < HeaderBytes) throw Bad("too short (truncated header)");
        uint magic = *(uint*)p, version = *(uint*)(p + 4), type = *(uint*)(p + 8), r = *(uint*)(p + 12), c = *(uint*)(p + 16);
        uint gr = *(uint*)(p + 20), groups = *(uint*)(p + 24);
        if (magic != Magic) throw Bad("bad magic");
        if (version != Version) throw Bad($"version {version} is not supported (version 1 files: repack the dense pruned file again with --repack --row-group G)");
        var vt = (GgmlType)type;
        if (vt is not (GgmlType.F16 or GgmlType.Q8_0)) throw Bad($"value type {type} is not supported");
        if (r != rows || c != cols) throw Bad($"shape {c} x {r} does not match the expected {cols} x {rows}");
        if (cols % 32 != 0 || cols <= 0 || rows <= 0) throw Bad("cols is not a positive multiple of 32");
        if (gr < 1 || gr > MaxGroupRows) throw Bad($"group rows {gr} is outside 1..{MaxGroupRows}");
        if (groups != (rows + gr - 1) / gr) throw Bad($"{groups} groups do not cover {rows} rows of {gr}");
        SparseBlob.CheckTableFits(byteLength, HeaderBytes, groups, "group offset table", Bad);
        var m = new RowGroupSparseMatrix(vt, rows, cols, (int)gr, data, byteLength);
        long* off = m.Offsets;
        int nb = cols / 32, gh = GroupHeaderBytes(cols);
        SparseBlob.CheckFirstOffset(off, HeaderBytes, groups, "group", Bad);
        for (int g = 0; g < groups; g++)
        {
            long a = off[g], b = off[g + 1];
            if (a < 0 || b > byteLength || b - a < gh) throw Bad($"group {g} is outside the blob or too short (truncated?)");
            uint* masks = (uint*)(p + a);
            long bits = 0;
            for (int i = 0; i < nb; i++) bits += BitOperations.PopCount(masks[i]);
            uint count = masks[nb];
            if (count != bits) throw Bad($"group {g}: inconsistent group mask: count {count} but the masks have {bits} columns");
            int k = PaddedCount((int)count), groupRowCount = Math.Min(rows - g * (int)gr, (int)gr);
            long prb = PackedRowBytes(vt, k);
            if (b - a != gh + groupRowCount * prb) throw Bad($"group {g}: length {b - a} does not match its mask ({count} columns x {groupRowCount} rows)");
            byte* rows0 = p + a + gh;
            for (int i = 0; i < groupRowCount; i++)
                for (int blk = 0; blk < k / 32; blk++)
                {
                    byte* v = rows0 + BlockAt(vt, groupRowCount, k, i, blk).Values;
                    if (vt == GgmlType.Q8_0 && new ReadOnlySpan<byte>(v, 32).Contains((byte)0x80)) throw Bad($"group {g}, row {i}: a quant of -128");
                    for (int j = Math.Max((int)count, 32 * blk); j < 32 * blk + 32; j++)
                        if (vt == GgmlType.F16 ? ((ushort*)v)[F16Slot(j & 31)] != 0 : v[j & 31] != 0)
                            throw Bad($"group {g}, row {i}: padding column {j} is not zero");
                }
        }
        SparseBlob.CheckTail(off, groups, TailPadding, byteLength, Bad);
        return m;
    }

    /// <summary>Stored columns of group <paramref name="g"/> (before padding).</summary>
    public int Count(int g) => (int)((uint*)GroupPtr(g))[Blocks];

    /// <summary>Values stored, padding included (all rows): what a product reads besides masks and scales.</summary>
    public long StoredValues
    {
        get
        {
            long n = 0;
            for (int g = 0; g < Groups; g++) n += (long)PaddedCount(Count(g)) * Math.Min(GroupRows, Rows - g * GroupRows);
            return n;
        }
    }

    /// <summary>Scalar reference: decodes row <paramref name="r"/> to F32 (zeros included).</summary>
    public void DecodeRow(int r, Span<float> dst)
    {
        if ((uint)r >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(r));
        if (dst.Length < Cols) throw new ArgumentException("destination is shorter than a row", nameof(dst));
        int g = r / GroupRows;
        byte* gp = GroupPtr(g);
        uint* masks = (uint*)gp;
        int k = PaddedCount(Count(g));
        byte* rows = gp + GroupHeaderBytes(Cols);
        int nr = Math.Min(GroupRows, Rows - g * GroupRows), at = 0;
        for (int c = 0; c < Cols; c++)
        {
            if (!Keeps(masks[c / 32], c % 32)) { dst[c] = 0; continue; }
            dst[c] = PackedValue(rows, ValueType, nr, k, r - g * GroupRows, at++);
        }
    }

    /// <summary>Where packed F16 value <paramref name="i"/> is stored in its row: per 32, the first 16 in the even slots, the last 16 in the odd ones.</summary>
    internal static int F16Slot(int i)
    {
        int j = i & 31;
        return (i & ~31) + (j < 16 ? 2 * j : 2 * (j - 16) + 1);
    }

    /// <summary>Packed value <paramref name="c"/> of row <paramref name="i"/> of a group (<paramref name="nr"/> rows of <paramref name="k"/> packed columns at <paramref name="rows"/>), as F32.</summary>
    internal static float PackedValue(byte* rows, GgmlType t, int nr, int k, int i, int c)
    {
        var (values, scale) = BlockAt(t, nr, k, i, c / 32);
        return t == GgmlType.F16
            ? Fp16.ToFloat(((ushort*)(rows + values))[F16Slot(c & 31)])
            : (sbyte)rows[values + (c & 31)] * Fp16.ToFloat(*(ushort*)(rows + scale));
    }
}
