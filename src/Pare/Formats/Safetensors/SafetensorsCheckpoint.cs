using System.Text.Json;
using Pare.Kernels;
using Pare.Tensors;

namespace Pare.Formats.Safetensors;

/// <summary>
/// The tensors of a Hugging Face checkpoint, possibly sharded over several safetensors files: one file, a directory
/// with <c>model.safetensors.index.json</c> (its <c>weight_map</c> names the shard of each tensor), or a directory of
/// <c>*.safetensors</c> files whose tensor names must not collide. Owns the memory maps of all shards.
/// </summary>
public sealed class SafetensorsCheckpoint : IDisposable
{
    public const string IndexFileName = "model.safetensors.index.json";
    const long MaxIndexBytes = 100L << 20;

    readonly List<SafetensorsFile> _files = [];
    readonly Dictionary<string, SafetensorsFile> _owner = new(StringComparer.Ordinal);

    /// <summary>The file or directory the checkpoint was opened from.</summary>
    public string Path { get; }
    public IReadOnlyList<SafetensorsFile> Files => _files;
    /// <summary>Names of all tensors across shards.</summary>
    public IEnumerable<string> TensorNames => _owner.Keys;

    SafetensorsCheckpoint(string path) => Path = path;

    /// <summary>Opens a <c>.safetensors</c> file, an index JSON file, or a directory holding either.</summary>
    public static SafetensorsCheckpoint Open(string pathOrDir)
    {
        var ck = new SafetensorsCheckpoint(pathOrDir);
        try
        {
            if (Directory.Exists(pathOrDir))
            {
                string index = System.IO.Path.Combine(pathOrDir, IndexFileName);
                if (File.Exists(index)) ck.OpenIndexed(index);
                else
                {
                    var shards = Directory.GetFiles(pathOrDir, "*.safetensors").Order(StringComparer.Ordinal).ToArray();
                    if (shards.Length == 0) throw new PareException($"{pathOrDir}: no {IndexFileName} and no *.safetensors files in the directory");
                    foreach (var f in shards) ck.AddFile(f, null);
                }
            }
            else if (pathOrDir.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) ck.OpenIndexed(pathOrDir);
            else ck.AddFile(pathOrDir, null);
            return ck;
        }
        catch
        {
            ck.Dispose();
            throw;
        }
    }

    void OpenIndexed(string indexPath)
    {
        if (!File.Exists(indexPath)) throw new PareException($"index file not found: {indexPath}");
        long size = new FileInfo(indexPath).Length;
        if (size > MaxIndexBytes) throw new InvalidModelException($"{indexPath}: {size} bytes is too large for a safetensors index");
        var map = new Dictionary<string, List<string>>(StringComparer.Ordinal); // shard file -> tensors it must hold
        var bytes = File.ReadAllBytes(indexPath);
        if (!System.Text.Unicode.Utf8.IsValid(bytes)) throw new InvalidModelException($"{indexPath}: not valid UTF-8");
        try
        {
            using var doc = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 16 });
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("weight_map", out var wm) || wm.ValueKind != JsonValueKind.Object)
                throw new InvalidModelException($"{indexPath}: no 'weight_map' object");
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var kv in wm.EnumerateObject())
            {
                if (kv.Value.ValueKind != JsonValueKind.String) throw new InvalidModelException($"{indexPath}: weight_map entry '{kv.Name}' is not a file name");
                string file = kv.Value.GetString()!;
                // A shard is a plain file next to the index: no directories, no escaping the checkpoint folder.
                if (file.Length == 0 || file != System.IO.Path.GetFileName(file) || file is "." or ".." || file.Contains('\\', StringComparison.Ordinal))
                    throw new InvalidModelException($"{indexPath}: weight_map file name '{file}' is not a plain file name");
                if (!seen.Add(kv.Name)) throw new InvalidModelException($"{indexPath}: duplicate weight_map entry '{kv.Name}'");
                if (!map.TryGetValue(file, out var list)) map[file] = list = [];
                list.Add(kv.Name);
            }
        }
        catch (JsonException e) { throw new InvalidModelException($"{indexPath}: not valid JSON: {e.Message.ReplaceLineEndings(" ")}", e); }
        if (map.Count == 0) throw new InvalidModelException($"{indexPath}: weight_map is empty");
        string dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(indexPath))!;
        foreach (var (file, names) in map.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            AddFile(System.IO.Path.Combine(dir, file), names);
    }

    /// <summary>Maps one shard. With an index, only the tensors it assigns to this shard are taken from it (and must exist).</summary>
    void AddFile(string path, List<string>? names)
    {
        var f = SafetensorsFile.Open(path);
        _files.Add(f);
        if (names != null)
        {
            foreach (var n in names)
            {
                if (!f.TryGetTensor(n, out _)) throw new InvalidModelException($"{path}: tensor '{n}' listed in the index is missing from this shard");
                _owner[n] = f;
            }
            return;
        }
        foreach (var t in f.Tensors)
            if (!_owner.TryAdd(t.Name, f)) throw new InvalidModelException($"{path}: tensor '{t.Name}' also appears in {_owner[t.Name].Path}");
    }

    public bool Contains(string name) => _owner.ContainsKey(name);

    /// <summary>The tensor and the shard that holds it; a missing name is an error naming the tensor.</summary>
    public (SafetensorsFile File, SafetensorsTensorInfo Info) Get(string name)
    {
        if (!_owner.TryGetValue(name, out var f)) throw new InvalidModelException($"{Path}: missing tensor '{name}'");
        return (f, f.GetTensor(name));
    }

    public WeightMatrix Matrix(string name) { var (f, t) = Get(name); return f.Matrix(t); }
    public float[] Vector(string name) { var (f, t) = Get(name); return f.Vector(t); }

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        _files.Clear();
    }
}
