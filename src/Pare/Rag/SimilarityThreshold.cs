namespace Pare.Rag;

/// <summary>Options of <see cref="SimilarityThreshold"/>.</summary>
public sealed record SimilarityThresholdOptions
{
    /// <summary>Cosine (question, sentence) a sentence needs to be kept when no budget is given. Default 0.35.</summary>
    public double Threshold { get; init; } = 0.35;
}

/// <summary>
/// Similarity-thresholded sentences: each sentence is embedded on its own and scored by its cosine to the question's
/// vector; the budget keeps the best ones (or the threshold, with no budget). A passage scores its best sentence.
/// </summary>
public sealed class SimilarityThreshold(Embedder embedder, SimilarityThresholdOptions? options = null) : IContextPruner
{
    public SimilarityThresholdOptions Options { get; } = options ?? new();
    public string Name => "similarity";

    public PrunedContext Prune(PruneRequest r, CancellationToken ct = default)
    {
        SentenceSelection.CheckBudget(r);
        var scores = SentenceScores(embedder, r.Question, r.Candidates.Select(c => c.Passage.Sentences).ToList(), ct);
        return SentenceSelection.Keep(r, scores, [.. scores.Select(s => s.Length == 0 ? -1 : s.Max())], Options.Threshold);
    }

    /// <summary>Cosine of every sentence to the question (all sentences of all passages in one batch).</summary>
    public static double[][] SentenceScores(Embedder embedder, string question, IReadOnlyList<IReadOnlyList<string>> passages, CancellationToken ct)
    {
        var texts = new List<string> { question };
        foreach (var p in passages) texts.AddRange(p);
        return Cosines(embedder.Embed(texts, null, ct), passages);
    }

    /// <summary>v[0] is the question's vector, then one per sentence of each passage in order: cosine of each to v[0].</summary>
    internal static double[][] Cosines(IReadOnlyList<float[]> v, IReadOnlyList<IReadOnlyList<string>> passages)
    {
        var result = new double[passages.Count][];
        int k = 1;
        for (int c = 0; c < passages.Count; c++)
        {
            result[c] = new double[passages[c].Count];
            for (int s = 0; s < result[c].Length; s++) result[c][s] = Embedder.Dot(v[0], v[k++]);
        }
        return result;
    }
}
