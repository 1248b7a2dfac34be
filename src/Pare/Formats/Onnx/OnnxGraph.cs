using System.Buffers.Binary;
using Google.Protobuf;
using Onnx;

namespace Pare.Formats.Onnx;

/// <summary>A float tensor read from an ONNX file: dims as stored (row-major, last dimension contiguous).</summary>
public sealed record OnnxTensor(string Name, long[] Dims, float[] Data)
{
    public long ElementCount => Dims.Aggregate(1L, (a, b) => a * b);
}

/// <summary>One node of the graph: operator, input and output value names, numeric attributes.</summary>
public sealed record OnnxNode(string OpType, string Name, string[] Inputs, string[] Outputs);

/// <summary>
/// The weights and node list of an ONNX model, parsed with the ONNX protobuf schema (OnnxSharp's generated classes on
/// Google.Protobuf). Only what an importer needs: float initializers (raw or typed storage), small constant tensors
/// (initializers or Constant nodes, as doubles) and the node list in graph order. Errors are one-line
/// <see cref="InvalidModelException"/>s.
/// </summary>
public sealed class OnnxGraph
{
    /// <summary>Files larger than this are refused (protobuf messages are limited to 2 GB; weights beside the file are not read).</summary>
    public const long MaxFileBytes = int.MaxValue;

    readonly Dictionary<string, TensorProto> _initializers = new(StringComparer.Ordinal);
    readonly Dictionary<string, TensorProto> _constants = new(StringComparer.Ordinal);
    readonly Dictionary<string, OnnxNode> _producers = new(StringComparer.Ordinal);
    readonly Dictionary<string, List<OnnxNode>> _consumers = new(StringComparer.Ordinal);

    public string Path { get; }
    public IReadOnlyList<OnnxNode> Nodes { get; }
    public IReadOnlyList<string> Inputs { get; }
    public IReadOnlyList<string> Outputs { get; }
    /// <summary>Names of all initializers in file order.</summary>
    public IReadOnlyList<string> InitializerNames { get; }

    OnnxGraph(string path, ModelProto model)
    {
        Path = path;
        var g = model.Graph ?? throw new InvalidModelException($"{path}: ONNX model has no graph");
        foreach (var t in g.Initializer) _initializers[t.Name] = t;
        var nodes = new List<OnnxNode>(g.Node.Count);
        foreach (var n in g.Node)
        {
            nodes.Add(new OnnxNode(n.OpType, n.Name, [.. n.Input], [.. n.Output]));
            if (n.OpType == "Constant" && n.Output.Count == 1)
                foreach (var a in n.Attribute)
                    if (a.Name == "value" && a.T is not null) _constants[n.Output[0]] = a.T;
        }
        Nodes = nodes;
        foreach (var n in nodes)
        {
            foreach (var o in n.Outputs) _producers[o] = n;
            foreach (var i in n.Inputs)
            {
                if (!_consumers.TryGetValue(i, out var l)) _consumers[i] = l = [];
                l.Add(n);
            }
        }
        Inputs = [.. g.Input.Select(i => i.Name).Where(n => !_initializers.ContainsKey(n))];
        Outputs = [.. g.Output.Select(o => o.Name)];
        InitializerNames = [.. g.Initializer.Select(t => t.Name)];
    }

    /// <summary>Parses an ONNX file; a truncated or malformed file gives one clear line.</summary>
    public static OnnxGraph Load(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new PareException($"{path}: no such file");
        if (info.Length == 0) throw new InvalidModelException($"{path}: empty file, not an ONNX model");
        if (info.Length > MaxFileBytes) throw new InvalidModelException($"{path}: {info.Length} bytes, more than an ONNX protobuf can hold");
        ModelProto model;
        try
        {
            using var fs = File.OpenRead(path);
            model = ModelProto.Parser.ParseFrom(fs);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidModelException($"{path}: not a valid ONNX protobuf ({e.Message})", e);
        }
        if (model.Graph is null || model.Graph.Node.Count == 0)
            throw new InvalidModelException($"{path}: not an ONNX model (no graph nodes); truncated or another file type?");
        return new OnnxGraph(path, model);
    }

    public bool HasInitializer(string name) => _initializers.ContainsKey(name);

    /// <summary>Dims of an initializer, or null.</summary>
    public long[]? InitializerDims(string name) => _initializers.TryGetValue(name, out var t) ? [.. t.Dims] : null;

    /// <summary>A float32 initializer's values (raw little-endian bytes or the float_data field).</summary>
    public OnnxTensor Float(string name)
    {
        if (!_initializers.TryGetValue(name, out var t)) throw new InvalidModelException($"{Path}: missing initializer '{name}'");
        return ToFloat(t);
    }

    OnnxTensor ToFloat(TensorProto t)
    {
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
            throw new InvalidModelException($"{Path}: tensor '{t.Name}' keeps its data in an external file, which Pare does not read");
        if (t.DataType != (int)TensorProto.Types.DataType.Float)
            throw new InvalidModelException($"{Path}: tensor '{t.Name}' has ONNX data type {t.DataType}; expected float32 (1)");
        long[] dims = [.. t.Dims];
        long count = dims.Aggregate(1L, (a, b) => a * b);
        if (dims.Any(d => d < 0) || count > int.MaxValue) throw new InvalidModelException($"{Path}: tensor '{t.Name}' has bad dims [{string.Join(",", dims)}]");
        var data = new float[count];
        if (t.RawData.Length > 0)
        {
            if (t.RawData.Length != count * 4) throw new InvalidModelException($"{Path}: tensor '{t.Name}' has {t.RawData.Length} bytes, expected {count * 4}");
            var raw = t.RawData.Span;
            for (int i = 0; i < data.Length; i++) data[i] = BinaryPrimitives.ReadSingleLittleEndian(raw[(4 * i)..]);
        }
        else
        {
            if (t.FloatData.Count != count) throw new InvalidModelException($"{Path}: tensor '{t.Name}' has {t.FloatData.Count} values, expected {count}");
            t.FloatData.CopyTo(data, 0);
        }
        return new OnnxTensor(t.Name, dims, data);
    }

    /// <summary>The values of a small constant (initializer or Constant node output) of any numeric type, or null.</summary>
    public double[]? Constant(string valueName)
    {
        if (!_constants.TryGetValue(valueName, out var t) && !_initializers.TryGetValue(valueName, out t)) return null;
        long count = t.Dims.Aggregate(1L, (a, b) => a * b);
        if (count > 1 << 16 || t.DataLocation == TensorProto.Types.DataLocation.External) return null;
        var raw = t.RawData.Span;
        switch ((TensorProto.Types.DataType)t.DataType)
        {
            case TensorProto.Types.DataType.Float:
                if (raw.Length > 0) return raw.Length == count * 4 ? [.. Enumerable.Range(0, (int)count).Select(i => (double)BinaryPrimitives.ReadSingleLittleEndian(t.RawData.Span[(4 * i)..]))] : null;
                return [.. t.FloatData.Select(f => (double)f)];
            case TensorProto.Types.DataType.Double:
                if (raw.Length > 0) return raw.Length == count * 8 ? [.. Enumerable.Range(0, (int)count).Select(i => BinaryPrimitives.ReadDoubleLittleEndian(t.RawData.Span[(8 * i)..]))] : null;
                return [.. t.DoubleData];
            case TensorProto.Types.DataType.Int64:
                if (raw.Length > 0) return raw.Length == count * 8 ? [.. Enumerable.Range(0, (int)count).Select(i => (double)BinaryPrimitives.ReadInt64LittleEndian(t.RawData.Span[(8 * i)..]))] : null;
                return [.. t.Int64Data.Select(v => (double)v)];
            case TensorProto.Types.DataType.Int32:
                if (raw.Length > 0) return raw.Length == count * 4 ? [.. Enumerable.Range(0, (int)count).Select(i => (double)BinaryPrimitives.ReadInt32LittleEndian(t.RawData.Span[(4 * i)..]))] : null;
                return [.. t.Int32Data.Select(v => (double)v)];
            default:
                return null;
        }
    }

    /// <summary>The node that produces <paramref name="valueName"/>, or null (graph input, initializer).</summary>
    public OnnxNode? Producer(string valueName) => _producers.TryGetValue(valueName, out var n) ? n : null;

    /// <summary>The nodes that read <paramref name="valueName"/>.</summary>
    public IReadOnlyList<OnnxNode> Consumers(string valueName) => _consumers.TryGetValue(valueName, out var l) ? l : [];
}
