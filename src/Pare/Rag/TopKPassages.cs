namespace Pare.Rag;

/// <summary>Options of <see cref="TopKPassages"/>.</summary>
public sealed record TopKOptions
{
    /// <summary>Passages kept with an unlimited budget. Default 3.</summary>
    public int K { get; init; } = 3;
}

/// <summary>Keeps whole passages in decreasing retrieval score while they fit the budget (at most K with no budget).</summary>
public sealed class TopKPassages(TopKOptions? options = null) : IContextPruner
{
    public TopKOptions Options { get; } = options ?? new();
    public string Name => "top-k";

    public PrunedContext Prune(PruneRequest r, CancellationToken ct = default)
    {
        SentenceSelection.CheckBudget(r);
        var kept = new List<(int, int)>();
        int used = 0, passages = 0;
        foreach (int c in Enumerable.Range(0, r.Candidates.Count).OrderByDescending(i => r.Candidates[i].Score).ThenBy(i => i))
        {
            if (r.Budget == int.MaxValue && passages >= Options.K) break;
            var sentences = r.Candidates[c].Passage.Sentences;
            int n = sentences.Sum(r.CountTokens);
            if (used + n > r.Budget) continue;
            for (int s = 0; s < sentences.Count; s++) kept.Add((c, s));
            used += n;
            passages++;
        }
        kept.Sort();
        return new PrunedContext(kept, [.. r.Candidates.Select(x => x.Score)], used);
    }
}
