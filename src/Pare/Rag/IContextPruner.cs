namespace Pare.Rag;

/// <summary>A retrieved passage and its first-stage (bi-encoder cosine) score; <see cref="Vector"/> is its index vector.</summary>
public sealed record Candidate(Passage Passage, double Score, float[]? Vector = null);

/// <summary>What a pruner is asked: a question, its retrieved candidates, a token budget and how tokens are counted.</summary>
/// <param name="Budget">Most tokens of context to keep (int.MaxValue: the pruner's own amount, e.g. its threshold).</param>
/// <param name="CountTokens">Tokens a sentence costs the reader.</param>
public sealed record PruneRequest(string Question, IReadOnlyList<Candidate> Candidates, int Budget, Func<string, int> CountTokens)
{
    public int TotalTokens => Candidates.Sum(c => c.Passage.Sentences.Sum(CountTokens));
}

/// <summary>The pruned context: kept sentences as (candidate, sentence) pairs in reading order, and a relevance score per
/// candidate (the pruner's reranking; higher is more relevant).</summary>
public sealed record PrunedContext(IReadOnlyList<(int Candidate, int Sentence)> Kept, double[] PassageScores, int TokensKept)
{
    public bool Keeps(int candidate, int sentence) => Kept.Contains((candidate, sentence));

    /// <summary>The kept text, passage by passage in the pruner's order (sentences of one passage joined by spaces).</summary>
    public IReadOnlyList<string> Texts(PruneRequest r) =>
        [.. Kept.GroupBy(k => k.Candidate).OrderByDescending(g => PassageScores[g.Key]).ThenBy(g => g.Key)
            .Select(g => string.Join(' ', g.OrderBy(k => k.Sentence).Select(k => r.Candidates[g.Key].Passage.Sentences[k.Sentence])))];
}

/// <summary>A context pruner: keeps the parts of the retrieved passages that matter for the question, within a budget.</summary>
public interface IContextPruner
{
    string Name { get; }
    PrunedContext Prune(PruneRequest request, CancellationToken ct = default);
}

/// <summary>Selection helpers shared by the sentence-level pruners.</summary>
public static class SentenceSelection
{
    /// <summary>
    /// Keeps sentences in decreasing score order while they fit the budget (a sentence that does not fit is skipped and
    /// smaller ones after it may still be kept); with an unlimited budget keeps those whose score is at least
    /// <paramref name="threshold"/>. Returns them in reading order.
    /// </summary>
    public static PrunedContext Keep(PruneRequest r, double[][] scores, double[] passageScores, double threshold = double.NegativeInfinity)
    {
        var order = new List<(int C, int S, double Score)>();
        for (int c = 0; c < scores.Length; c++)
            for (int s = 0; s < scores[c].Length; s++) order.Add((c, s, scores[c][s]));
        var kept = new List<(int, int)>();
        int used = 0;
        foreach (var (c, s, score) in order.OrderByDescending(o => o.Score).ThenBy(o => o.C).ThenBy(o => o.S))
        {
            if (r.Budget == int.MaxValue && score < threshold) break;
            int n = r.CountTokens(r.Candidates[c].Passage.Sentences[s]);
            if (used + n > r.Budget) continue;
            kept.Add((c, s));
            used += n;
        }
        kept.Sort();
        return new PrunedContext(kept, passageScores, used);
    }

    public static void CheckBudget(PruneRequest r)
    {
        if (r.Budget < 1) throw new PareException($"the token budget must be at least 1 (got {r.Budget})");
    }
}
