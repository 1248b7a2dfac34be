using System.Text;
using System.Text.Json;

namespace Pare.Rag;

/// <summary>Options of <see cref="PassageIndex.Build"/>.</summary>
public sealed record IndexOptions
{
    /// <summary>Sentences per passage. Default 5.</summary>
    public int PassageSentences { get; init; } = 5;
    /// <summary>File name patterns indexed. Default *.txt and *.md.</summary>
    public IReadOnlyList<string> Patterns { get; init; } = ["*.txt", "*.md"];
}

/// <summary>
/// A brute-force cosine index over sentence vectors of passages (no vector library: at the few thousand passages of a
/// local folder an exact scan is milliseconds, and exact). File: "PARERAG1", then a UTF-8 JSON header (model, dim,
/// passages) length-prefixed, then the float32 vectors, passage after passage.
/// </summary>
public sealed class PassageIndex(string model, IReadOnlyList<Passage> passages, float[][] vectors)
{
    const string Magic = "PARERAG1";
    public string Model { get; } = model;
    public IReadOnlyList<Passage> Passages { get; } = passages;
    public float[][] Vectors { get; } = vectors;

    /// <summary>Indexes every matching file under <paramref name="dir"/> (recursively, in ordinal path order).</summary>
    public static PassageIndex Build(Embedder e, string modelName, string dir, IndexOptions? options = null, CancellationToken ct = default)
    {
        var o = options ?? new IndexOptions();
        if (!Directory.Exists(dir)) throw new PareException($"folder not found: {dir}");
        var files = o.Patterns.SelectMany(p => Directory.EnumerateFiles(dir, p, SearchOption.AllDirectories)).Distinct().Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0) throw new PareException($"{dir}: no {string.Join(" or ", o.Patterns)} files to index");
        var passages = new List<Passage>();
        foreach (var f in files)
            passages.AddRange(TextSplit.Passages(Path.GetRelativePath(dir, f), ReadText(f), o.PassageSentences));
        if (passages.Count == 0) throw new PareException($"{dir}: the files hold no text to index");
        return new PassageIndex(modelName, passages, e.Embed([.. passages.Select(p => p.Text)], null, ct));
    }

    /// <summary>The file as UTF-8 text; a file with NUL bytes or invalid UTF-8 is refused as binary.</summary>
    public static string ReadText(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (Array.IndexOf(bytes, (byte)0) >= 0) throw new PareException($"{path} is a binary file (NUL bytes), not text");
        try { return new UTF8Encoding(false, true).GetString(bytes); }
        catch (DecoderFallbackException) { throw new PareException($"{path} is not UTF-8 text"); }
    }

    /// <summary>Top-<paramref name="k"/> passages by cosine to the (unit) query vector.</summary>
    public List<Candidate> Search(float[] query, int k) =>
        [.. Enumerable.Range(0, Passages.Count).Select(i => (i, s: (double)Embedder.Dot(query, Vectors[i])))
            .OrderByDescending(x => x.s).ThenBy(x => x.i).Take(k).Select(x => new Candidate(Passages[x.i], x.s, Vectors[x.i]))];

    /// <summary>Writes the index to a temporary file and moves it into place (nothing half-written on failure).</summary>
    public void Save(string path)
    {
        var tmp = path + ".tmp";
        try
        {
            using (var w = new BinaryWriter(File.Create(tmp)))
            {
                w.Write(Encoding.ASCII.GetBytes(Magic));
                var header = JsonSerializer.SerializeToUtf8Bytes(new Header(Model, Vectors.Length == 0 ? 0 : Vectors[0].Length,
                    [.. Passages.Select(p => new PassageDto(p.Source, [.. p.Sentences]))]));
                w.Write(header.Length);
                w.Write(header);
                foreach (var v in Vectors) foreach (float x in v) w.Write(x);
            }
            File.Move(tmp, path, overwrite: true);
        }
        finally { if (File.Exists(tmp)) File.Delete(tmp); }
    }

    public static PassageIndex Load(string path)
    {
        if (!File.Exists(path)) throw new PareException($"index not found: {path}");
        using var r = new BinaryReader(File.OpenRead(path));
        try
        {
            if (Encoding.ASCII.GetString(r.ReadBytes(Magic.Length)) != Magic) throw new PareException($"{path} is not a pare index");
            int n = r.ReadInt32();
            if (n < 2 || n > r.BaseStream.Length) throw new PareException($"{path}: damaged index header");
            var h = JsonSerializer.Deserialize<Header>(r.ReadBytes(n)) ?? throw new PareException($"{path}: damaged index header");
            var vectors = new float[h.Passages.Length][];
            for (int i = 0; i < vectors.Length; i++)
            {
                vectors[i] = new float[h.Dim];
                for (int j = 0; j < h.Dim; j++) vectors[i][j] = r.ReadSingle();
            }
            return new PassageIndex(h.Model, [.. h.Passages.Select(p => new Passage(p.Source, p.Sentences))], vectors);
        }
        catch (EndOfStreamException) { throw new PareException($"{path}: the index is truncated"); }
        catch (JsonException) { throw new PareException($"{path}: damaged index header"); }
    }

    sealed record Header(string Model, int Dim, PassageDto[] Passages);
    sealed record PassageDto(string Source, string[] Sentences);
}
