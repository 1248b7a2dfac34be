using System.Buffers.Binary;
using System.Text.Json;

namespace Pare.Formats.Safetensors;

/// <summary>
/// Writes one <c>.safetensors</c> file: u64 header length, JSON header padded with spaces to a multiple of 8 bytes
/// (as the reference writer does, so F32 data starts aligned), then the tensors back to back in insertion order.
/// Tensor bytes come from callbacks so a model never sits in memory twice. Written to a temporary name and renamed.
/// </summary>
public sealed class SafetensorsWriter
{
    readonly List<(string Name, string DType, long[] Shape, long Bytes, Action<Stream> Write)> _tensors = [];
    readonly Dictionary<string, string> _meta = new(StringComparer.Ordinal);
    readonly HashSet<string> _names = new(StringComparer.Ordinal);

    /// <summary>Sets a <c>__metadata__</c> string (transformers expects "format": "pt").</summary>
    public SafetensorsWriter SetMetadata(string key, string value) { _meta[key] = value; return this; }

    /// <summary>Adds a tensor whose bytes <paramref name="write"/> streams: exactly shape product × dtype width.</summary>
    public SafetensorsWriter AddTensor(string name, string dtype, long[] shape, Action<Stream> write)
    {
        int width = SafetensorsDType.ByteWidth(dtype);
        if (width == 0) throw new ArgumentException($"unknown safetensors dtype '{dtype}'", nameof(dtype));
        if (name == "__metadata__" || !_names.Add(name)) throw new ArgumentException($"tensor name '{name}' is reserved or already added", nameof(name));
        _tensors.Add((name, dtype, shape, shape.Aggregate(1L, (a, b) => a * b) * width, write));
        return this;
    }

    public SafetensorsWriter AddTensor(string name, string dtype, long[] shape, byte[] data)
    {
        AddTensor(name, dtype, shape, s => s.Write(data));
        if (data.Length != _tensors[^1].Bytes) throw new ArgumentException($"tensor '{name}': {data.Length} bytes given, {_tensors[^1].Bytes} expected");
        return this;
    }

    public SafetensorsWriter AddF32(string name, ReadOnlySpan<float> values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), values[i]);
        return AddTensor(name, "F32", [values.Length], bytes);
    }

    /// <summary>The header JSON (unpadded), with data offsets assigned in insertion order.</summary>
    byte[] Header()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (_meta.Count > 0)
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in _meta) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in _tensors)
            {
                w.WriteStartObject(t.Name);
                w.WriteString("dtype", t.DType);
                w.WriteStartArray("shape");
                foreach (var d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + t.Bytes);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += t.Bytes;
            }
            w.WriteEndObject();
        }
        return ms.ToArray();
    }

    public void Write(string path)
    {
        var header = Header();
        int padded = (header.Length + 7) / 8 * 8;
        string tmp = path + ".tmp-" + Environment.ProcessId;
        try
        {
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Span<byte> len = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
                fs.Write(len);
                fs.Write(header);
                for (int i = header.Length; i < padded; i++) fs.WriteByte((byte)' ');
                foreach (var t in _tensors)
                {
                    long start = fs.Position;
                    t.Write(fs);
                    if (fs.Position - start != t.Bytes)
                        throw new InvalidOperationException($"tensor '{t.Name}': writer produced {fs.Position - start} bytes, expected {t.Bytes}");
                }
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }
}
