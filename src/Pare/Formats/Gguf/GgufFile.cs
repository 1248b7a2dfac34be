using System.Text;
using Pare.Kernels;
using Pare.Tensors;

namespace Pare.Formats.Gguf;

/// <summary>
/// A GGUF file (v2/v3), memory-mapped read-only. The header is parsed with every length and offset checked
/// against the file size, so a truncated or hostile file fails with <see cref="InvalidModelException"/>
/// and never allocates more than the file could describe. Tensor data stays in the map.
/// </summary>
/// <remarks>Layout: magic "GGUF", u32 version, u64 tensor count, u64 kv count, kv pairs, tensor infos,
/// padding to <c>general.alignment</c> (default 32), tensor data (each offset aligned, relative to data start).</remarks>
public sealed unsafe class GgufFile : IDisposable
{
    public const uint Magic = 0x46554747; // "GGUF" little-endian
    public const int DefaultAlignment = 32;
    const int MaxDims = 4;
    const long MaxStringBytes = 1 << 26; // 64 MiB: no real key or token is near this

    readonly MappedFile _file;
    readonly byte* _base;
    readonly Dictionary<string, GgufTensorInfo> _byName = new(StringComparer.Ordinal);

    public string Path { get; }
    public long FileSize { get; }
    public uint Version { get; }
    public int Alignment { get; }
    /// <summary>Absolute file offset of the tensor data section.</summary>
    public long DataOffset { get; }
    /// <summary>Metadata in file order.</summary>
    public IReadOnlyList<KeyValuePair<string, GgufValue>> MetadataList { get; }
    public IReadOnlyDictionary<string, GgufValue> Metadata { get; }
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    GgufFile(string path)
    {
        Path = path;
        _file = MappedFile.Open(path, 24, "GGUF");
        FileSize = _file.Length;
        _base = _file.Base;
        try
        {
            var r = new Reader(_base, FileSize, path);
            uint magic = r.U32();
            if (magic != Magic) throw new InvalidModelException($"{path}: not a GGUF file (magic 0x{magic:X8}, expected \"GGUF\")");
            Version = r.U32();
            if (Version is < 2 or > 3) throw new InvalidModelException($"{path}: GGUF version {Version} is not supported (2 or 3)");
            long nTensors = r.Count("tensor count", 8 + 4 + 4 + 8 + 1);
            long nKv = r.Count("metadata count", 8 + 4 + 1);
            var list = new List<KeyValuePair<string, GgufValue>>((int)Math.Min(nKv, 4096));
            var dict = new Dictionary<string, GgufValue>(StringComparer.Ordinal);
            for (long i = 0; i < nKv; i++)
            {
                string key = r.Str();
                var type = (GgufValueType)r.U32();
                var value = r.Value(type, key, depth: 0);
                if (!dict.TryAdd(key, value)) throw new InvalidModelException($"{path}: duplicate metadata key '{key}'");
                list.Add(new(key, value));
            }
            MetadataList = list;
            Metadata = dict;

            Alignment = DefaultAlignment;
            if (dict.TryGetValue("general.alignment", out var al))
            {
                long a = al.AsInt64();
                if (a <= 0 || a > 1 << 20 || (a & (a - 1)) != 0) throw new InvalidModelException($"{path}: general.alignment {a} is not a power of two");
                Alignment = (int)a;
            }

            var infos = new List<GgufTensorInfo>((int)Math.Min(nTensors, 65536));
            for (long i = 0; i < nTensors; i++)
            {
                string name = r.Str();
                uint nd = r.U32();
                if (nd is 0 or > MaxDims) throw new InvalidModelException($"{path}: tensor '{name}' has {nd} dimensions (1..{MaxDims} allowed)");
                var dims = new long[nd];
                long count = 1;
                for (int d = 0; d < nd; d++)
                {
                    ulong v = r.U64();
                    if (v == 0 || v > int.MaxValue) throw new InvalidModelException($"{path}: tensor '{name}' has an absurd dimension {v}");
                    dims[d] = (long)v;
                    if (count > long.MaxValue / (long)v) throw new InvalidModelException($"{path}: tensor '{name}' is absurdly large");
                    count *= (long)v;
                }
                uint typeNum = r.U32();
                var type = (GgmlType)typeNum;
                int bs = GgmlTypeInfo.BlockSize(type);
                if (bs == 0 || GgmlTypeInfo.BlockBytes(type) == 0) throw new InvalidModelException($"{path}: tensor '{name}' has unknown type {typeNum}");
                if (dims[0] % bs != 0) throw new InvalidModelException($"{path}: tensor '{name}' row length {dims[0]} is not a multiple of the {type} block size {bs}");
                long bytes = count / bs * GgmlTypeInfo.BlockBytes(type);
                ulong off = r.U64();
                if (off % (ulong)Alignment != 0) throw new InvalidModelException($"{path}: tensor '{name}' offset {off} is not aligned to {Alignment}");
                if (off > (ulong)FileSize) throw new InvalidModelException($"{path}: tensor '{name}' offset {off} is outside the file");
                var info = new GgufTensorInfo(name, dims, type, (long)off, bytes);
                if (!_byName.TryAdd(name, info)) throw new InvalidModelException($"{path}: duplicate tensor '{name}'");
                infos.Add(info);
            }
            long pos = r.Position;
            DataOffset = (pos + Alignment - 1) / Alignment * Alignment;
            foreach (var t in infos)
            {
                if (DataOffset + t.Offset > FileSize || t.ByteSize > FileSize - DataOffset - t.Offset)
                    throw new InvalidModelException($"{path}: tensor '{t.Name}' ({t.ByteSize} bytes at data offset {t.Offset}) extends past the end of the file ({FileSize} bytes); the file may be truncated");
            }
            Tensors = infos;
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Maps and parses a GGUF file.</summary>
    public static GgufFile Open(string path) => new(path);

    public bool TryGetTensor(string name, out GgufTensorInfo info) => _byName.TryGetValue(name, out info!);

    public GgufTensorInfo GetTensor(string name) =>
        _byName.TryGetValue(name, out var t) ? t : throw new InvalidModelException($"{Path}: missing tensor '{name}'");

    /// <summary>Address of a tensor's first byte inside the map (valid until Dispose).</summary>
    public nint TensorAddress(GgufTensorInfo t)
    {
        _file.ThrowIfDisposed();
        return (nint)(_base + DataOffset + t.Offset);
    }

    public ReadOnlySpan<byte> TensorBytes(GgufTensorInfo t) => new((void*)TensorAddress(t), checked((int)t.ByteSize));

    /// <summary>A 2-D tensor as a weight matrix (rows = ne1, cols = ne0).</summary>
    public WeightMatrix Matrix(GgufTensorInfo t)
    {
        long rows = t.Dims.Length >= 2 ? t.Dims.Skip(1).Aggregate(1L, (a, b) => a * b) : 1;
        if (rows > int.MaxValue) throw new InvalidModelException($"{Path}: tensor '{t.Name}' has too many rows");
        return new WeightMatrix(t.Name, t.Type, (int)rows, (int)t.Dims[0], TensorAddress(t), t.ByteSize);
    }

    /// <summary>A 1-D tensor (norm weights, biases) converted to F32.</summary>
    public float[] Vector(GgufTensorInfo t)
    {
        if (t.ElementCount > 1 << 28) throw new InvalidModelException($"{Path}: tensor '{t.Name}' is too large for a vector");
        if (t.Type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16))
            throw new InvalidModelException($"{Path}: vector tensor '{t.Name}' has type {t.Type}; expected F32, F16 or BF16");
        var dst = new float[t.ElementCount];
        Kernels.Dequant.Row(t.Type, TensorBytes(t), dst);
        return dst;
    }

    // ---- metadata accessors ----
    public bool Has(string key) => Metadata.ContainsKey(key);
    public string? GetString(string key) => Metadata.TryGetValue(key, out var v) ? v.Value as string ?? throw Wrong(key, "a string") : null;
    public long? GetInt(string key) => Metadata.TryGetValue(key, out var v) ? v.AsInt64() : null;
    public double? GetFloat(string key) => Metadata.TryGetValue(key, out var v) ? v.AsDouble() : null;
    public T[]? GetArray<T>(string key) => Metadata.TryGetValue(key, out var v) ? v.Value as T[] ?? throw Wrong(key, $"an array of {typeof(T).Name}") : null;

    public long RequireInt(string key) => GetInt(key) ?? throw new InvalidModelException($"{Path}: missing metadata '{key}'");

    InvalidModelException Wrong(string key, string what) => new($"{Path}: metadata '{key}' is not {what}");

    public void Dispose() => _file.Dispose();

    /// <summary>Bounds-checked little-endian cursor over the mapped header.</summary>
    struct Reader(byte* p, long size, string path)
    {
        long _pos;
        public readonly long Position => _pos;

        void Need(long n)
        {
            if (n < 0 || n > size - _pos) throw new InvalidModelException($"{path}: unexpected end of file at byte {_pos} (file truncated or corrupt)");
        }

        public uint U32() { Need(4); uint v = *(uint*)(p + _pos); _pos += 4; return v; }
        public ulong U64() { Need(8); ulong v = *(ulong*)(p + _pos); _pos += 8; return v; }

        /// <summary>A count of items each at least <paramref name="minItemBytes"/> long: bounded by what is left of the file.</summary>
        public long Count(string what, long minItemBytes)
        {
            ulong n = U64();
            if (n > (ulong)((size - _pos) / minItemBytes)) throw new InvalidModelException($"{path}: {what} {n} is more than the file can hold");
            return (long)n;
        }

        public string Str()
        {
            ulong n = U64();
            if (n > MaxStringBytes || (long)n > size - _pos) throw new InvalidModelException($"{path}: string of length {n} at byte {_pos - 8} is outside the file");
            var s = Encoding.UTF8.GetString(p + _pos, (int)n);
            _pos += (long)n;
            return s;
        }

        public GgufValue Value(GgufValueType type, string key, int depth)
        {
            switch (type)
            {
                case GgufValueType.UInt8: Need(1); return new(type, p[_pos++]);
                case GgufValueType.Int8: Need(1); return new(type, (sbyte)p[_pos++]);
                case GgufValueType.UInt16: Need(2); { var v = *(ushort*)(p + _pos); _pos += 2; return new(type, v); }
                case GgufValueType.Int16: Need(2); { var v = *(short*)(p + _pos); _pos += 2; return new(type, v); }
                case GgufValueType.UInt32: return new(type, U32());
                case GgufValueType.Int32: return new(type, (int)U32());
                case GgufValueType.Float32: return new(type, BitConverter.UInt32BitsToSingle(U32()));
                case GgufValueType.Bool: Need(1); return new(type, p[_pos++] != 0);
                case GgufValueType.String: return new(type, Str());
                case GgufValueType.UInt64: return new(type, U64());
                case GgufValueType.Int64: return new(type, (long)U64());
                case GgufValueType.Float64: return new(type, BitConverter.UInt64BitsToDouble(U64()));
                case GgufValueType.Array:
                    {
                        if (depth > 0) throw new InvalidModelException($"{path}: metadata '{key}' nests arrays, which Pare does not read");
                        var et = (GgufValueType)U32();
                        int width = ElementWidth(et);
                        if (width == 0) throw new InvalidModelException($"{path}: metadata '{key}' has unknown array element type {(uint)et}");
                        long n = Count($"metadata '{key}' array length", width);
                        return new(type, ReadArray(et, (int)n, key), et);
                    }
                default: throw new InvalidModelException($"{path}: metadata '{key}' has unknown value type {(uint)type}");
            }
        }

        /// <summary>Minimum bytes per element (strings: the 8-byte length).</summary>
        static int ElementWidth(GgufValueType t) => t switch
        {
            GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
            GgufValueType.UInt16 or GgufValueType.Int16 => 2,
            GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
            GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 or GgufValueType.String => 8,
            _ => 0,
        };

        Array ReadArray(GgufValueType et, int n, string key)
        {
            switch (et)
            {
                case GgufValueType.String: { var a = new string[n]; for (int i = 0; i < n; i++) a[i] = Str(); return a; }
                case GgufValueType.Bool: { var a = new bool[n]; for (int i = 0; i < n; i++) a[i] = p[_pos++] != 0; return a; }
                case GgufValueType.UInt8: return Copy<byte>(n);
                case GgufValueType.Int8: return Copy<sbyte>(n);
                case GgufValueType.UInt16: return Copy<ushort>(n);
                case GgufValueType.Int16: return Copy<short>(n);
                case GgufValueType.UInt32: return Copy<uint>(n);
                case GgufValueType.Int32: return Copy<int>(n);
                case GgufValueType.Float32: return Copy<float>(n);
                case GgufValueType.UInt64: return Copy<ulong>(n);
                case GgufValueType.Int64: return Copy<long>(n);
                case GgufValueType.Float64: return Copy<double>(n);
                default: throw new InvalidModelException($"{path}: metadata '{key}' has unknown array element type {(uint)et}");
            }
        }

        T[] Copy<T>(int n) where T : unmanaged
        {
            long bytes = (long)n * sizeof(T);
            Need(bytes);
            var a = new ReadOnlySpan<T>(p + _pos, n).ToArray();
            _pos += bytes;
            return a;
        }
    }
}
