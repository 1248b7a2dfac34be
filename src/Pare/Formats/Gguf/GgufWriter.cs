using System.Text;
using Pare.Tensors;

namespace Pare.Formats.Gguf;

/// <summary>
/// Writes GGUF v3 files in the layout llama.cpp expects: header, metadata in insertion order, tensor infos,
/// data section aligned to <see cref="Alignment"/>, each tensor's data padded to the alignment.
/// Tensor bytes are produced by a callback so a large model never needs to sit in memory whole.
/// The file is written to a temporary name and renamed at the end: a failure leaves no partial output.
/// </summary>
public sealed class GgufWriter
{
    readonly List<KeyValuePair<string, GgufValue>> _meta = [];
    readonly List<(string Name, GgmlType Type, long[] Dims, long Bytes, Action<Stream> Write)> _tensors = [];

    public int Alignment { get; init; } = GgufFile.DefaultAlignment;

    /// <summary>Sets (or replaces) a metadata value; order of first insertion is kept.</summary>
    public GgufWriter Set(string key, GgufValue value)
    {
        int i = _meta.FindIndex(kv => kv.Key == key);
        if (i >= 0) _meta[i] = new(key, value); else _meta.Add(new(key, value));
        return this;
    }

    public GgufWriter Set(string key, string v) => Set(key, GgufValue.Of(v));
    public GgufWriter Set(string key, uint v) => Set(key, GgufValue.Of(v));
    public GgufWriter Set(string key, float v) => Set(key, GgufValue.Of(v));
    public GgufWriter Set(string key, bool v) => Set(key, GgufValue.Of(v));

    /// <summary>Adds a tensor whose bytes <paramref name="write"/> will stream (exactly the size implied by type and dims).</summary>
    public GgufWriter AddTensor(string name, GgmlType type, long[] dims, Action<Stream> write)
    {
        long count = dims.Aggregate(1L, (a, b) => a * b);
        long bytes = GgmlTypeInfo.RowBytes(type, dims[0]) * (count / dims[0]);
        _tensors.Add((name, type, dims, bytes, write));
        return this;
    }

    /// <summary>Adds a tensor from its already-encoded bytes.</summary>
    public GgufWriter AddTensor(string name, GgmlType type, long[] dims, byte[] data)
    {
        AddTensor(name, type, dims, s => s.Write(data));
        long expected = _tensors[^1].Bytes;
        if (data.Length != expected) throw new ArgumentException($"tensor '{name}': {data.Length} bytes given, {expected} expected for {type} {string.Join("x", dims)}");
        return this;
    }

    public void Write(string path)
    {
        string tmp = path + ".tmp-" + Environment.ProcessId;
        try
        {
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            using (var w = new BinaryWriter(fs, Encoding.UTF8, leaveOpen: true))
            {
                w.Write(GgufFile.Magic);
                w.Write(3u);
                w.Write((ulong)_tensors.Count);
                w.Write((ulong)_meta.Count);
                foreach (var (k, v) in _meta)
                {
                    WriteString(w, k);
                    w.Write((uint)v.Type);
                    WriteValue(w, v);
                }
                long offset = 0;
                var offsets = new long[_tensors.Count];
                for (int i = 0; i < _tensors.Count; i++)
                {
                    var t = _tensors[i];
                    WriteString(w, t.Name);
                    w.Write((uint)t.Dims.Length);
                    foreach (var d in t.Dims) w.Write((ulong)d);
                    w.Write((uint)t.Type);
                    w.Write((ulong)offset);
                    offsets[i] = offset;
                    offset = Align(offset + t.Bytes);
                }
                w.Flush();
                Pad(fs);
                long dataStart = fs.Position;
                for (int i = 0; i < _tensors.Count; i++)
                {
                    var t = _tensors[i];
                    long before = fs.Position;
                    t.Write(fs);
                    if (fs.Position - before != t.Bytes)
                        throw new InvalidOperationException($"tensor '{t.Name}': wrote {fs.Position - before} bytes, expected {t.Bytes}");
                    Pad(fs);
                    if (i + 1 < _tensors.Count && fs.Position - dataStart != offsets[i + 1]) throw new InvalidOperationException("GGUF writer offset mismatch");
                }
            }
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    long Align(long x) => (x + Alignment - 1) / Alignment * Alignment;

    void Pad(Stream s)
    {
        long pad = Align(s.Position) - s.Position;
        for (long i = 0; i < pad; i++) s.WriteByte(0);
    }

    static void WriteString(BinaryWriter w, string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)b.Length);
        w.Write(b);
    }

    static void WriteValue(BinaryWriter w, GgufValue v)
    {
        switch (v.Type)
        {
            case GgufValueType.Array:
                w.Write((uint)v.ElementType);
                var a = (Array)v.Value;
                w.Write((ulong)a.Length);
                foreach (var e in a) WriteScalar(w, v.ElementType, e!);
                break;
            default: WriteScalar(w, v.Type, v.Value); break;
        }
    }

    static void WriteScalar(BinaryWriter w, GgufValueType t, object o)
    {
        switch (t)
        {
            case GgufValueType.UInt8: w.Write(Convert.ToByte(o, null)); break;
            case GgufValueType.Int8: w.Write(Convert.ToSByte(o, null)); break;
            case GgufValueType.UInt16: w.Write(Convert.ToUInt16(o, null)); break;
            case GgufValueType.Int16: w.Write(Convert.ToInt16(o, null)); break;
            case GgufValueType.UInt32: w.Write(Convert.ToUInt32(o, null)); break;
            case GgufValueType.Int32: w.Write(Convert.ToInt32(o, null)); break;
            case GgufValueType.Float32: w.Write(Convert.ToSingle(o, null)); break;
            case GgufValueType.Bool: w.Write((byte)((bool)o ? 1 : 0)); break;
            case GgufValueType.String: WriteString(w, (string)o); break;
            case GgufValueType.UInt64: w.Write(Convert.ToUInt64(o, null)); break;
            case GgufValueType.Int64: w.Write(Convert.ToInt64(o, null)); break;
            case GgufValueType.Float64: w.Write(Convert.ToDouble(o, null)); break;
            default: throw new ArgumentException($"cannot write metadata of type {t}");
        }
    }
}
