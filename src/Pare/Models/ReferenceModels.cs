namespace Pare.Models;

/// <summary>
/// The reference models Pare trains and ships (docs/reference-models.md): GGUF files in the repository's <c>models/</c>
/// folder, copied next to the CLI when it is built. Found, in order, under <c>$PARE_MODELS</c>, under <c>models/</c> beside the
/// running assembly, and under <c>models/</c> in the current folder or any folder above it (a checkout of the repository).
/// </summary>
public static class ReferenceModels
{
    /// <summary>The reference model: 8M parameters, context 512, 8k byte-level BPE (configs/pare-ref.json).</summary>
    public const string PareRef = "pare-ref";
    /// <summary>Its draft model: 1.8M parameters, same tokenizer and context (configs/pare-ref-draft.json).</summary>
    public const string PareRefDraft = "pare-ref-draft";

    /// <summary>Full path of <c>NAME.gguf</c>, or null when it is in none of the places searched.</summary>
    public static string? Find(string name)
    {
        string file = name + ".gguf";
        foreach (string dir in SearchDirs())
        {
            string path = Path.Combine(dir, file);
            if (File.Exists(path)) return Path.GetFullPath(path);
        }
        return null;
    }

    /// <summary>Like <see cref="Find"/>, but a missing model is a clear error naming the places searched.</summary>
    public static string Require(string name) => Find(name)
        ?? throw new PareException($"reference model '{name}.gguf' not found (searched: {string.Join(", ", SearchDirs())}); set PARE_MODELS to the folder that holds it");

    /// <summary>The folders searched, in order.</summary>
    public static IEnumerable<string> SearchDirs() => Candidates().Select(Path.GetFullPath).Distinct();

    static IEnumerable<string> Candidates()
    {
        if (Environment.GetEnvironmentVariable("PARE_MODELS") is { Length: > 0 } env) yield return env;
        yield return Path.Combine(AppContext.BaseDirectory, "models");
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir != null; dir = dir.Parent)
            yield return Path.Combine(dir.FullName, "models");
    }
}
