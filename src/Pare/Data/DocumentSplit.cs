using Pare.Tensors;

namespace Pare.Data;

/// <summary>One document of the corpus: a stable id ("sotu/1790_george_washington_n", "brown/ca01", "moby/chapter_1") and its text.</summary>
public sealed record Document(string Id, string Source, string Text);

/// <summary>Which split a document belongs to.</summary>
public enum Split { Train, Valid, Test }

/// <summary>Fractions and seed of the document split.</summary>
public sealed record SplitOptions
{
    /// <summary>Seed of the shuffle; changing it changes which documents are held out.</summary>
    public ulong Seed { get; init; } = 20260101;
    /// <summary>Fraction of each source's documents held out for validation (at least one document).</summary>
    public double ValidFraction { get; init; } = 0.05;
    /// <summary>Fraction of each source's documents held out for testing (at least one document).</summary>
    public double TestFraction { get; init; } = 0.05;
}

/// <summary>
/// Splits documents (never positions inside a document) into train/valid/test: per source, sort by id, shuffle with a
/// fixed seed, take the first documents for test, the next for valid, the rest for train. Stratifying by source keeps
/// every source in every split; the result depends only on the ids and the seed, not on input order.
/// </summary>
public static class DocumentSplit
{
    public static Dictionary<Split, List<Document>> Assign(IEnumerable<Document> documents, SplitOptions? options = null)
    {
        options ??= new SplitOptions();
        var result = new Dictionary<Split, List<Document>> { [Split.Train] = [], [Split.Valid] = [], [Split.Test] = [] };
        foreach (var group in documents.GroupBy(d => d.Source).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var docs = group.OrderBy(d => d.Id, StringComparer.Ordinal).ToList();
            if (docs.Select(d => d.Id).Distinct().Count() != docs.Count) throw new ArgumentException($"document ids repeat in source '{group.Key}'");
            // Each source gets its own stream, so adding a source does not reshuffle the others.
            var rng = new SplitMix64(options.Seed ^ Fnv(group.Key));
            rng.Shuffle(docs);
            int nTest = docs.Count < 3 ? 0 : Math.Max(1, (int)Math.Round(docs.Count * options.TestFraction));
            int nValid = docs.Count < 3 ? 0 : Math.Max(1, (int)Math.Round(docs.Count * options.ValidFraction));
            for (int i = 0; i < docs.Count; i++)
                result[i < nTest ? Split.Test : i < nTest + nValid ? Split.Valid : Split.Train].Add(docs[i]);
        }
        // Within a split, a stable order: by id.
        foreach (var list in result.Values) list.Sort((a, b) => string.CompareOrdinal(a.Id, b.Id));
        return result;
    }

    static ulong Fnv(string s)
    {
        ulong h = 14695981039346656037UL;
        foreach (char ch in s) { h ^= ch; h *= 1099511628211UL; }
        return h;
    }
}
