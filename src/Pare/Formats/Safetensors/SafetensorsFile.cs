using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;
using Pare.Kernels;
using Pare.Tensors;

namespace Pare.Formats.Safetensors;

/// <summary>One tensor of a safetensors file: dtype, shape (outermost first) and byte range in the data section.</summary>
public sealed record SafetensorsTensorInfo(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long ByteSize => End - Begin;
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A <c>.safetensors</c> file, memory-mapped read-only. Every length and offset in the header is checked against
/// the file size, so a truncated or hostile file fails with a one-line <see cref="InvalidModelException"/> and never
/// makes Pare allocate more than the file holds. Tensor data stays in the map.
/// </summary>
/// <remarks>Layout (https://github.com/huggingface/safetensors): u64 little-endian header length N; N bytes of UTF-8
/// JSON <c>{"name": {"dtype": "F16", "shape": [rows, cols], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}</c>,
/// possibly padded with spaces; the data section. Offsets are relative to the data section start (8 + N), which need
/// not be aligned: consumers of <see cref="TensorAddress"/> must tolerate unaligned addresses.</remarks>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>Headers are small (about 100 bytes per tensor); anything larger is hostile.</summary>
    public const long MaxHeaderBytes = 100L << 20;
    const int MaxDims = 8;

    readonly MappedFile _file;
    readonly byte* _base;
    readonly Dictionary<string, SafetensorsTensorInfo> _byName = new(StringComparer.Ordinal);

    public string Path { get; }
    public long FileSize { get; }
    /// <summary>Absolute file offset of the data section (8 + header length).</summary>
    public long DataOffset { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Tensors in header order.</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors { get; }

    SafetensorsFile(string path)
    {
        Path = path;
        _file = MappedFile.Open(path, 8 + 2, "safetensors");
        FileSize = _file.Length;
        _base = _file.Base;
        try
        {
            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(_base, 8));
            if (n > (ulong)(FileSize - 8)) throw new InvalidModelException($"{path}: header length {n} is larger than the file ({FileSize} bytes); the file may be truncated or is not safetensors");
            if (n > MaxHeaderBytes) throw new InvalidModelException($"{path}: header length {n} exceeds the {MaxHeaderBytes}-byte limit");
            if (n < 2) throw new InvalidModelException($"{path}: header length {n} is too short for a JSON object");
            DataOffset = 8 + (long)n;
            var header = new ReadOnlySpan<byte>(_base + 8, (int)n);
            if (header[0] != (byte)'{') throw new InvalidModelException($"{path}: header does not start with '{{'; not a safetensors file");
            (Tensors, Metadata) = ParseHeader(header, FileSize - DataOffset);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Maps and parses one safetensors file.</summary>
    public static SafetensorsFile Open(string path) => new(path);

    (List<SafetensorsTensorInfo>, Dictionary<string, string>) ParseHeader(ReadOnlySpan<byte> json, long dataSize)
    {
        // JsonDocument only validates UTF-8 lazily (when a string is read); check it up front.
        if (!System.Text.Unicode.Utf8.IsValid(json)) throw new InvalidModelException($"{Path}: header is not valid UTF-8");
        JsonDocument doc;
        // The header is bounded by the file size and MaxHeaderBytes, so the copy JsonDocument makes is bounded too.
        try { doc = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 16 }); }
        catch (JsonException e) { throw new InvalidModelException($"{Path}: header is not valid JSON: {OneLine(e.Message)}", e); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidModelException($"{Path}: header is not a JSON object");
            var tensors = new List<SafetensorsTensorInfo>();
            var meta = new Dictionary<string, string>(StringComparer.Ordinal);
            bool seenMeta = false;
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (seenMeta) throw new InvalidModelException($"{Path}: duplicate '__metadata__'");
                    seenMeta = true;
                    if (prop.Value.ValueKind == JsonValueKind.Null) continue;
                    if (prop.Value.ValueKind != JsonValueKind.Object) throw new InvalidModelException($"{Path}: '__metadata__' is not an object");
                    foreach (var kv in prop.Value.EnumerateObject())
                    {
                        if (kv.Value.ValueKind != JsonValueKind.String) throw new InvalidModelException($"{Path}: metadata '{kv.Name}' is not a string");
                        if (!meta.TryAdd(kv.Name, kv.Value.GetString()!)) throw new InvalidModelException($"{Path}: duplicate metadata key '{kv.Name}'");
                    }
                    continue;
                }
                var info = ParseTensor(prop.Name, prop.Value, dataSize);
                if (!_byName.TryAdd(info.Name, info)) throw new InvalidModelException($"{Path}: duplicate tensor '{info.Name}'");
                tensors.Add(info);
            }
            return (tensors, meta);
        }
    }

    SafetensorsTensorInfo ParseTensor(string name, JsonElement e, long dataSize)
    {
        InvalidModelException Bad(string what) => new($"{Path}: tensor '{name}' {what}");
        if (e.ValueKind != JsonValueKind.Object) throw Bad("is not a JSON object");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String) throw Bad("has no string 'dtype'");
        string dtype = dt.GetString()!;
        int width = SafetensorsDType.ByteWidth(dtype);
        if (width == 0) throw Bad($"has unknown dtype '{dtype}'");

        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array) throw Bad("has no 'shape' array");
        int nd = sh.GetArrayLength();
        if (nd > MaxDims) throw Bad($"has {nd} dimensions (at most {MaxDims})");
        var shape = new long[nd];
        long count = 1;
        for (int d = 0; d < nd; d++)
        {
            var v = sh[d];
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long dim) || dim < 0) throw Bad($"has an invalid dimension {v.GetRawText()}");
            shape[d] = dim;
            // Keeping the running product within the data section means it can never overflow.
            if (dim != 0 && count > dataSize / dim) { count = -1; break; }
            count *= dim;
        }
        if (count < 0) throw Bad($"shape [{string.Join(", ", shape)}] is larger than the data section ({dataSize} bytes)");

        if (!e.TryGetProperty("data_offsets", out var offs) || offs.ValueKind != JsonValueKind.Array || offs.GetArrayLength() != 2)
            throw Bad("has no 'data_offsets' [begin, end] pair");
        if (!TryOffset(offs[0], out long begin) || !TryOffset(offs[1], out long end)) throw Bad($"has invalid data_offsets {offs.GetRawText()}");
        if (begin > end) throw Bad($"has data_offsets [{begin}, {end}] with begin after end");
        if (end > dataSize) throw Bad($"data_offsets [{begin}, {end}] extend past the data section ({dataSize} bytes); the file may be truncated");
        if (count * width != end - begin)
            throw Bad($"has {end - begin} bytes, but shape [{string.Join(", ", shape)}] of {dtype} needs {count * width}");
        return new SafetensorsTensorInfo(name, dtype, shape, begin, end);
    }

    static bool TryOffset(JsonElement v, out long x)
    {
        x = 0;
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out x) && x >= 0;
    }

    static string OneLine(string s) => s.ReplaceLineEndings(" ");

    public bool TryGetTensor(string name, out SafetensorsTensorInfo info) => _byName.TryGetValue(name, out info!);

    public SafetensorsTensorInfo GetTensor(string name) =>
        _byName.TryGetValue(name, out var t) ? t : throw new InvalidModelException($"{Path}: missing tensor '{name}'");

    /// <summary>Address of a tensor's first byte inside the map (valid until Dispose; not necessarily aligned).</summary>
    public nint TensorAddress(SafetensorsTensorInfo t)
    {
        _file.ThrowIfDisposed();
        return (nint)(_base + DataOffset + t.Begin);
    }

    public ReadOnlySpan<byte> TensorBytes(SafetensorsTensorInfo t) =>
        new((void*)TensorAddress(t), t.ByteSize <= int.MaxValue ? (int)t.ByteSize : throw new InvalidModelException($"{Path}: tensor '{t.Name}' is too large to read as one span"));

    /// <summary>A 2-D tensor as a zero-copy weight matrix: HF Linear weights are [out, in] row-major, so rows = shape[0].</summary>
    public WeightMatrix Matrix(SafetensorsTensorInfo t)
    {
        if (t.Shape.Length != 2) throw new InvalidModelException($"{Path}: tensor '{t.Name}' has shape [{string.Join(", ", t.Shape)}]; expected a matrix");
        if (t.Shape[0] > int.MaxValue || t.Shape[1] > int.MaxValue) throw new InvalidModelException($"{Path}: tensor '{t.Name}' is too large");
        var type = SafetensorsDType.ToGgml(t.DType) ?? throw UnsupportedType(t);
        return new WeightMatrix(t.Name, type, (int)t.Shape[0], (int)t.Shape[1], TensorAddress(t), t.ByteSize);
    }

    /// <summary>A tensor (norm weights, biases) converted to F32. Reads bytewise, so unaligned data is fine.</summary>
    public float[] Vector(SafetensorsTensorInfo t)
    {
        if (t.ElementCount > 1 << 28) throw new InvalidModelException($"{Path}: tensor '{t.Name}' is too large for a vector");
        var type = SafetensorsDType.ToGgml(t.DType) ?? throw UnsupportedType(t);
        var dst = new float[t.ElementCount];
        Kernels.Dequant.Row(type, TensorBytes(t), dst);
        return dst;
    }

    InvalidModelException UnsupportedType(SafetensorsTensorInfo t) =>
        new($"{Path}: tensor '{t.Name}' has dtype {t.DType}; Pare computes with F32, F16 and BF16 safetensors weights");

    public void Dispose() => _file.Dispose();
}

/// <summary>The dtype names of the safetensors format and how they map to Pare's element types.</summary>
public static class SafetensorsDType
{
    /// <summary>Bytes per element of a byte-sized safetensors dtype; 0 for a name that is unknown (or sub-byte).</summary>
    public static int ByteWidth(string dtype) => dtype switch
    {
        "BOOL" or "U8" or "I8" or "F8_E4M3" or "F8_E5M2" or "F8_E8M0" => 1,
        "I16" or "U16" or "F16" or "BF16" => 2,
        "I32" or "U32" or "F32" => 4,
        "I64" or "U64" or "F64" => 8,
        _ => 0,
    };

    /// <summary>The Pare weight type of a float dtype Pare computes with, or null (the tensor can be listed but not used).</summary>
    public static GgmlType? ToGgml(string dtype) => dtype switch
    {
        "F32" => GgmlType.F32,
        "F16" => GgmlType.F16,
        "BF16" => GgmlType.BF16,
        _ => null,
    };

    /// <summary>The safetensors name of an exportable Pare type; throws for quantized types.</summary>
    public static string FromGgml(GgmlType type, string tensorName) => type switch
    {
        GgmlType.F32 => "F32",
        GgmlType.F16 => "F16",
        GgmlType.BF16 => "BF16",
        _ => throw new PareException($"tensor '{tensorName}' is {type}; only F32, F16 and BF16 weights can be exported to safetensors (dequantize first)"),
    };
}
