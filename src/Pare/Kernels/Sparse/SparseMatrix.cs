using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using Pare.Tensors;

namespace Pare.Kernels.Sparse;

/// <summary>
/// Pare's compact storage of a pruned weight matrix: per row, a bitmask of the non-zero positions plus the non-zero
/// values packed in column order, in F32, F16 or Q8_0 (int8 quants with the original per-32 block scales), so the
/// values are bit-identical to the dense matrix's. Decode reads every stored byte once per token, so bytes are speed:
/// a 50% sparse F16 matrix takes 1.125 bytes per weight instead of 2 (2:4 needs exactly as much as a 2:4 packing with
/// 2-bit indices, 0.5 x 2 + 4 bits / 4 weights; 4:8 less than 3-bit indices), Q8_0 (2 + 4 + 32(1-s)) / 32.
/// <para>Stored in a GGUF file as a 1-D tensor of type I8 under the matrix's own name (the file carries
/// <c>pare.sparse.format = "bitmask"</c>); only Pare reads it. Blob layout, little-endian:</para>
/// <code>
///  0  u32  magic "PSPB" (0x42505350)
///  4  u32  version = 1
///  8  u32  value type (ggml number: F32 = 0, F16 = 1, Q8_0 = 8)
/// 12  u32  rows
/// 16  u32  cols (a multiple of 32)
/// 20  u32  reserved = 0
/// 24  u64  row offsets [rows + 1], from the start of the blob; row r is [off[r], off[r + 1])
///     rows: masks, one bit per column (set: non-zero), in an order chosen so that one broadcast load and one
///           vector test give the kernel its expansion predicate (<see cref="MaskBit"/>):
///             F32: u32 per 32 columns, bit i = column i;
///             F16: u32 per 32 columns, bit (i / 2) + 16 (i % 2) = column i (even columns low, odd columns high);
///             Q8_0: u64 per 64 columns (two blocks; ceil(cols / 64) of them), bit 8 (i % 8) + i / 8 = column i,
///           Q8_0 only: f16 block scales [cols / 32],
///           the non-zero values in column order (F32 4 bytes, F16 2 bytes, Q8_0 one int8 quant, never -128)
///     64 zero bytes of padding after the last row (kernels load whole vectors past a row's last value)
/// </code>
/// </summary>
public sealed unsafe class SparseMatrix
{
    public const uint Magic = 0x42505350;
    public const uint Version = 2;
    public const int HeaderBytes = 24;
    /// <summary>Zero bytes after the last row, so kernels may load a whole vector past any row's values.</summary>
    public const int TailPadding = 64;
    /// <summary>GGUF metadata key marking a file with compact sparse tensors.</summary>
    public const string FormatKey = "pare.sparse.format";
    /// <summary>The GGUF tensor type the blob is stored as.</summary>
    public const GgmlType StorageType = GgmlType.I8;

    SparseMatrix(GgmlType valueType, int rows, int cols, nint data, long byteLength)
    {
        ValueType = valueType; Rows = rows; Cols = cols; Data = data; ByteLength = byteLength;
    }

    public GgmlType ValueType { get; }
    public int Rows { get; }
    public int Cols { get; }
    /// <summary>Address of the blob (inside the model's memory map).</summary>
    public nint Data { get; }
    public long ByteLength { get; }
    public int Blocks => Cols / 32;

    internal long* Offsets => (long*)((byte*)Data + HeaderBytes);
    internal byte* RowPtr(int r) => (byte*)Data + Offsets[r];

    /// <summary>Whether a dense matrix of this type and width can be stored compactly.</summary>
    public static bool CanEncode(GgmlType type, int cols) => type is GgmlType.F32 or GgmlType.F16 or GgmlType.Q8_0 && cols % 32 == 0 && cols > 0;

    /// <summary>
    /// Whether this dense matrix can be stored compactly: <see cref="CanEncode(GgmlType, int)"/>, and for Q8_0 no quant
    /// of -128 (the decode kernel negates quants; quantizers write -127..127, so only a hand-made file has one).
    /// </summary>
    public static bool CanEncode(GgmlType type, int rows, int cols, ReadOnlySpan<byte> dense) =>
        CanEncode(type, cols) && !(type == GgmlType.Q8_0 && HasQ8Minus128(dense, rows, cols));

    static bool HasQ8Minus128(ReadOnlySpan<byte> dense, int rows, int cols)
    {
        long blocks = (long)rows * (cols / 32);
        for (long b = 0; b < blocks && (b + 1) * 34 <= dense.Length; b++)
            if (dense.Slice((int)(b * 34) + 2, 32).Contains((byte)0x80)) return true;
        return false;
    }

    static int ValueBytes(GgmlType t) => t switch { GgmlType.F32 => 4, GgmlType.F16 => 2, GgmlType.Q8_0 => 1, _ => 0 };

    /// <summary>Bytes of a row's masks: 4 per 32 columns (Q8_0: 8 per 64 columns).</summary>
    internal static int MaskBytes(GgmlType t, int nb) => t == GgmlType.Q8_0 ? (nb + 1) / 2 * 8 : nb * 4;

    /// <summary>Bytes before a row's packed values: masks, and for Q8_0 the f16 block scales.</summary>
    internal static int RowHeaderBytes(GgmlType t, int nb) => MaskBytes(t, nb) + (t == GgmlType.Q8_0 ? nb * 2 : 0);

    /// <summary>Where column c's bit is: (byte offset of its mask word in the row, bit within that word).</summary>
    internal static (int Word, int Bit) MaskBit(GgmlType t, int c)
    {
        int i = c % 32;
        return t switch
        {
            GgmlType.F16 => (c / 32 * 4, (i >> 1) + 16 * (i & 1)),
            GgmlType.Q8_0 => (c / 64 * 8, 8 * (c % 64 % 8) + c % 64 / 8),
            _ => (c / 32 * 4, i),
        };
    }

    static bool IsSet(byte* row, GgmlType t, int c)
    {
        var (w, bit) = MaskBit(t, c);
        return (*(ulong*)(row + w) >> bit & 1) != 0;
    }

    static long CountBits(byte* p, int bytes)
    {
        long n = 0;
        for (int i = 0; i < bytes; i += 4) n += BitOperations.PopCount(*(uint*)(p + i));
        return n;
    }

    /// <summary>Encodes a dense matrix given as its stored bytes (F32, F16 or Q8_0 rows); zeros are dropped.</summary>
    public static byte[] Encode(GgmlType type, int rows, int cols, ReadOnlySpan<byte> dense)
    {
        if (!CanEncode(type, cols)) throw new ArgumentException($"cannot store {type} rows of {cols} compactly");
        long rowBytes = GgmlTypeInfo.RowBytes(type, cols);
        if (dense.Length < rowBytes * rows) throw new ArgumentException("dense data is shorter than the matrix", nameof(dense));
        if (!CanEncode(type, rows, cols, dense)) throw new ArgumentException("a Q8_0 quant of -128 cannot be stored compactly", nameof(dense));
        int nb = cols / 32, vb = ValueBytes(type), maskBytes = MaskBytes(type, nb);
        long fixedBytes = RowHeaderBytes(type, nb);
        bool NonZero(ReadOnlySpan<byte> src, int c) => type switch
        {
            GgmlType.F32 => (BinaryPrimitives.ReadUInt32LittleEndian(src[(c * 4)..]) & 0x7FFFFFFF) != 0,
            GgmlType.F16 => (BinaryPrimitives.ReadUInt16LittleEndian(src[(c * 2)..]) & 0x7FFF) != 0,
            _ => src[c / 32 * 34 + 2 + c % 32] != 0,
        };
        // Pass 1: sizes.
        var offsets = new long[rows + 1];
        long pos = HeaderBytes + 8L * (rows + 1);
        for (int r = 0; r < rows; r++)
        {
            var src = dense.Slice((int)(r * rowBytes), (int)rowBytes);
            long nnz = 0;
            for (int c = 0; c < cols; c++) if (NonZero(src, c)) nnz++;
            offsets[r] = pos;
            pos += fixedBytes + nnz * vb;
        }
        offsets[rows] = pos;
        // Pass 2: write.
        var blob = new byte[pos + TailPadding];
        var h = blob.AsSpan();
        SparseBlob.WriteHeader(h, Magic, Version, type, rows, cols, HeaderBytes, offsets);
        for (int r = 0; r < rows; r++)
        {
            var src = dense.Slice((int)(r * rowBytes), (int)rowBytes);
            var dst = h[(int)offsets[r]..(int)offsets[r + 1]];
            int at = maskBytes;
            if (type == GgmlType.Q8_0)
                for (int b = 0; b < nb; b++) { src.Slice(b * 34, 2).CopyTo(dst[at..]); at += 2; }
            for (int c = 0; c < cols; c++)
            {
                if (!NonZero(src, c)) continue;
                var (word, bit) = MaskBit(type, c);
                dst[word + bit / 8] |= (byte)(1 << (bit % 8));
                var v = type switch
                {
                    GgmlType.F32 => src.Slice(c * 4, 4),
                    GgmlType.F16 => src.Slice(c * 2, 2),
                    _ => src.Slice(c / 32 * 34 + 2 + c % 32, 1),
                };
                v.CopyTo(dst[at..]);
                at += vb;
            }
        }
        return blob;
    }

    /// <summary>
    /// Reads and fully validates a blob (header, offsets, and every row's length against its masks), so a corrupt or
    /// hostile file cannot make a kernel read outside it.
    /// </summary>
    public static SparseMatrix Open(string name, nint data, long byteLength, int rows, int cols)
    {
        byte* p = (byte*)data;
        InvalidModelException Bad(string what) => new($"sparse tensor '{name}': {what}");
        if (byteLength < HeaderBytes) throw Bad("too short");
        uint magic = *(uint*)p, version = *(uint*)(p + 4), type = *(uint*)(p + 8), r = *(uint*)(p + 12), c = *(uint*)(p + 16);
        if (magic != Magic) throw Bad("bad magic");
        if (version != Version) throw Bad($"version {version} is not supported");
        var vt = (GgmlType)type;
        int vb = ValueBytes(vt);
        if (vb == 0) throw Bad($"value type {type} is not supported");
        if (r != rows || c != cols) throw Bad($"shape {c} x {r} does not match the expected {cols} x {rows}");
        if (cols % 32 != 0) throw Bad("cols is not a multiple of 32");
        SparseBlob.CheckTableFits(byteLength, HeaderBytes, rows, "offset table", Bad);
        var m = new SparseMatrix(vt, rows, cols, data, byteLength);
        long* off = m.Offsets;
        int nb = cols / 32, maskBytes = MaskBytes(vt, nb);
        long fixedBytes = RowHeaderBytes(vt, nb);
        SparseBlob.CheckFirstOffset(off, HeaderBytes, rows, "row", Bad);
        for (int i = 0; i < rows; i++)
        {
            long a = off[i], b = off[i + 1];
            if (a < 0 || b > byteLength || b - a < fixedBytes) throw Bad($"row {i} is outside the blob or too short");
            long nnz = CountBits(p + a, maskBytes);
            if (b - a != fixedBytes + nnz * vb) throw Bad($"row {i} length {b - a} does not match its mask ({nnz} values)");
            if (vt == GgmlType.Q8_0 && new ReadOnlySpan<byte>(p + a + fixedBytes, (int)(nnz * vb)).Contains((byte)0x80))
                throw Bad($"row {i} holds a quant of -128 (not allowed in the compact format)");
        }
        SparseBlob.CheckTail(off, rows, TailPadding, byteLength, Bad);
        return m;
    }

    /// <summary>Non-zero values stored (all rows).</summary>
    public long NonZeros
    {
        get
        {
            long n = 0;
            for (int r = 0; r < Rows; r++) n += CountBits(RowPtr(r), MaskBytes(ValueType, Blocks));
            return n;
        }
    }

    /// <summary>Scalar reference: decodes row <paramref name="r"/> to F32 (zeros included).</summary>
    public void DecodeRow(int r, Span<float> dst)
    {
        if (dst.Length < Cols) throw new ArgumentException("destination is shorter than a row", nameof(dst));
        DecodeRow(RowPtr(r), ValueType, Cols, dst);
    }

    internal static void DecodeRow(byte* p, GgmlType valueType, int cols, Span<float> dst)
    {
        int nb = cols / 32;
        ushort* scales = (ushort*)(p + MaskBytes(valueType, nb));
        byte* v = p + RowHeaderBytes(valueType, nb);
        for (int c = 0; c < cols; c++)
        {
            if (!IsSet(p, valueType, c)) { dst[c] = 0; continue; }
            switch (valueType)
            {
                case GgmlType.F32: dst[c] = *(float*)v; v += 4; break;
                case GgmlType.F16: dst[c] = Fp16.ToFloat(*(ushort*)v); v += 2; break;
                default: dst[c] = (sbyte)*v * Fp16.ToFloat(scales[c / 32]); v += 1; break;
            }
        }
    }
}
