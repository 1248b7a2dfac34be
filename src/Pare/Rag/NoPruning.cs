namespace Pare.Rag;

/// <summary>No pruning: the passages in retrieval order, cut when the budget is reached (what a reader with a short window
/// sees of the concatenated context).</summary>
public sealed class NoPruning : IContextPruner
{
    public string Name => "none";

    public PrunedContext Prune(PruneRequest r, CancellationToken ct = default)
    {
        SentenceSelection.CheckBudget(r);
        var kept = new List<(int, int)>();
        int used = 0;
        for (int c = 0; c < r.Candidates.Count; c++)
            for (int s = 0; s < r.Candidates[c].Passage.Sentences.Count; s++)
            {
                int n = r.CountTokens(r.Candidates[c].Passage.Sentences[s]);
                if (used + n > r.Budget) return new PrunedContext(kept, [.. r.Candidates.Select(x => x.Score)], used);
                kept.Add((c, s));
                used += n;
            }
        return new PrunedContext(kept, [.. r.Candidates.Select(x => x.Score)], used);
    }
}
