namespace Pare.Rag;

/// <summary>Options of <see cref="CoarseToFine"/>.</summary>
public sealed record CoarseToFineOptions
{
    /// <summary>Each level keeps the best units up to this many times the budget before the next, finer level scores them. Default 2.</summary>
    public double Expand { get; init; } = 2.0;
    /// <summary>Sentences per paragraph (the middle level). Default 2.</summary>
    public int ParagraphSentences { get; init; } = 2;
    /// <summary>Weight of the parent's score added to a unit's own cosine. Default 0.5.</summary>
    public double ParentWeight { get; init; } = 0.5;
    /// <summary>With no budget: the budget is this fraction of the context's tokens. Default 0.5.</summary>
    public double DefaultKeep { get; init; } = 0.5;
}

/// <summary>
/// Coarse-to-fine, question-guided selection down a pyramid, after LRS-VQA's dynamic image pyramid (there: image tiles
/// scored by a text-aware region module, only the selected tiles refined): document (retrieved passage, scored by its
/// index vector, no encoder pass) → paragraph (runs of <see cref="CoarseToFineOptions.ParagraphSentences"/> sentences,
/// embedded only inside the surviving documents) → sentence (embedded only inside the surviving paragraphs). Each level
/// keeps its best units up to Expand × budget tokens; the last keeps sentences to the budget. A unit's score is its
/// cosine to the question plus ParentWeight × its parent's score.
/// </summary>
public sealed class CoarseToFine(Embedder embedder, CoarseToFineOptions? options = null) : IContextPruner
{
    public CoarseToFineOptions Options { get; } = options ?? new();
    public string Name => "coarse-to-fine";

    public PrunedContext Prune(PruneRequest r, CancellationToken ct = default)
    {
        SentenceSelection.CheckBudget(r);
        int budget = r.Budget == int.MaxValue ? Math.Max(1, (int)(Options.DefaultKeep * r.TotalTokens)) : r.Budget;
        var q = embedder.Embed([r.Question], null, ct)[0];
        // Documents without an index vector (a haystack cut into passages) are embedded whole: the coarse level's pass.
        var missing = r.Candidates.Where(c => c.Vector == null).Select(c => c.Passage.Text).ToList();
        var extra = embedder.Embed(missing, null, ct);
        int m = 0;
        var docScore = r.Candidates.Select(c => (double)Embedder.Dot(q, c.Vector ?? extra[m++])).ToArray();
        // Level 1: documents.
        var docs = TakeWithin(Enumerable.Range(0, r.Candidates.Count).OrderByDescending(c => docScore[c]).ThenBy(c => c),
            c => r.Candidates[c].Passage.Sentences.Sum(r.CountTokens), Options.Expand * budget);
        // Level 2: paragraphs of the kept documents.
        var paras = new List<(int C, int First, int Count)>();
        foreach (int c in docs)
            for (int s = 0; s < r.Candidates[c].Passage.Sentences.Count; s += Options.ParagraphSentences)
                paras.Add((c, s, Math.Min(Options.ParagraphSentences, r.Candidates[c].Passage.Sentences.Count - s)));
        var pv = embedder.Embed([.. paras.Select(p => string.Join(' ', r.Candidates[p.C].Passage.Sentences.Skip(p.First).Take(p.Count)))], null, ct);
        var paraScore = paras.Select((p, i) => Embedder.Dot(q, pv[i]) + Options.ParentWeight * docScore[p.C]).ToArray();
        var keptParas = TakeWithin(Enumerable.Range(0, paras.Count).OrderByDescending(i => paraScore[i]).ThenBy(i => i),
            i => r.Candidates[paras[i].C].Passage.Sentences.Skip(paras[i].First).Take(paras[i].Count).Sum(r.CountTokens), Options.Expand * budget);
        // Level 3: sentences of the kept paragraphs.
        var sentences = keptParas.SelectMany(i => Enumerable.Range(paras[i].First, paras[i].Count).Select(s => (C: paras[i].C, S: s, Parent: paraScore[i]))).ToList();
        var sv = embedder.Embed([.. sentences.Select(x => r.Candidates[x.C].Passage.Sentences[x.S])], null, ct);
        var scores = r.Candidates.Select(c => Enumerable.Repeat(double.NegativeInfinity, c.Passage.Sentences.Count).ToArray()).ToArray();
        for (int i = 0; i < sentences.Count; i++) scores[sentences[i].C][sentences[i].S] = Embedder.Dot(q, sv[i]) + Options.ParentWeight * sentences[i].Parent;
        var kept = SentenceSelection.Keep(r with { Budget = budget }, scores, docScore);
        var filtered = kept.Kept.Where(k => !double.IsNegativeInfinity(scores[k.Candidate][k.Sentence])).ToList();
        return new PrunedContext(filtered, docScore, filtered.Sum(k => r.CountTokens(r.Candidates[k.Candidate].Passage.Sentences[k.Sentence])));
    }

    /// <summary>Units in the given order while their tokens stay within <paramref name="limit"/> (at least one).</summary>
    static List<int> TakeWithin(IEnumerable<int> order, Func<int, int> tokens, double limit)
    {
        var kept = new List<int>();
        double used = 0;
        foreach (int u in order)
        {
            int n = tokens(u);
            if (kept.Count > 0 && used + n > limit) continue;
            kept.Add(u);
            used += n;
        }
        return kept;
    }
}
