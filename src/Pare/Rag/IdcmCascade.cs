namespace Pare.Rag;

/// <summary>Options of <see cref="IdcmCascade"/>.</summary>
public sealed record IdcmOptions
{
    /// <summary>Candidates the effective (full) model rescores. Default 3.</summary>
    public int Rescore { get; init; } = 3;
}

/// <summary>
/// Intra-Document Cascading (Hofstätter et al. 2021) for reranking retrieved passages: a cheap selection model (ESM,
/// <paramref name="selection"/>) scores every candidate, and only its top <see cref="IdcmOptions.Rescore"/> go through
/// the effective model (ETM, <paramref name="effective"/>). Candidates past the cut keep their ESM order below the
/// rescored ones. The stages are in <c>IdcmStages.cs</c>: the index's bi-encoder cosine, a layer- or token-pruned
/// MiniLM, the full MiniLM's best sentence, the Provence joint pass.
/// </summary>
public sealed class IdcmCascade(IPassageScorer selection, IPassageScorer effective, IdcmOptions? options = null)
{
    public IdcmOptions Options { get; } = options ?? new();
    public IPassageScorer Selection { get; } = selection;
    public IPassageScorer Effective { get; } = effective;

    /// <summary>Ranking of candidate indices, best first.</summary>
    public int[] Rank(string question, IReadOnlyList<Candidate> candidates, CancellationToken ct = default) =>
        Rank(question, candidates, Selection.Score(question, candidates, ct), Options.Rescore, ct);

    /// <summary>The ranking given the ESM's scores (already computed), rescoring the top <paramref name="rescore"/> with the ETM
    /// (with 1 the ETM is not run: the ESM's ranking is the answer).</summary>
    public int[] Rank(string question, IReadOnlyList<Candidate> candidates, double[] esm, int rescore, CancellationToken ct = default)
    {
        if (rescore < 1) throw new PareException($"the cascade must rescore at least 1 candidate (got {rescore})");
        var order = Order(esm);
        if (rescore == 1) return order; // one candidate rescored alone keeps its place: no ETM pass needed
        var top = order.Take(rescore).ToArray();
        var etm = Effective.Score(question, [.. top.Select(i => candidates[i])], ct);
        var rescored = top.Select((c, i) => (c, etm[i])).OrderByDescending(x => x.Item2).ThenBy(x => x.c).Select(x => x.c);
        return [.. rescored, .. order.Skip(rescore)];
    }

    /// <summary>The full model on every candidate (the cascade's reference).</summary>
    public int[] RankFull(string question, IReadOnlyList<Candidate> candidates, CancellationToken ct = default) =>
        Order(Effective.Score(question, candidates, ct));

    public static int[] Order(double[] scores) => [.. Enumerable.Range(0, scores.Length).OrderByDescending(i => scores[i]).ThenBy(i => i)];
}
