namespace Pare.Rag;

/// <summary>Options of <see cref="ProvencePruner"/>.</summary>
public sealed record ProvenceOptions
{
    /// <summary>Probability a sentence needs to be kept when no budget is given. Default 0.5.</summary>
    public double Threshold { get; init; } = 0.5;
    /// <summary>Weight of the passage's rerank logit added to each of its sentences' logits when ranking under a budget. Default 1.</summary>
    public double PassageWeight { get; init; } = 1.0;
}

/// <summary>
/// Provence-style pruning (Chirkova et al. 2025): one encoder pass over question + passage labels each sentence relevant
/// or not (sequence labeling, pooled per sentence) and scores the passage for reranking in the same pass (by its best
/// sentence; the [CLS] rerank head is measured beside it). The heads are
/// trained here on the corpus's train split (<see cref="ProvenceTraining"/>) over the frozen encoder.
/// </summary>
public sealed class ProvencePruner(Embedder embedder, ProvenceHead head, ProvenceOptions? options = null) : IContextPruner
{
    public ProvenceOptions Options { get; } = options ?? new();
    public string Name => "provence";

    // The scores of the last request: the evaluation asks for the same candidates at several budgets.
    (string Key, (double[][] Sentences, double[] Passages) Scores)? _last;

    /// <summary>Sentence logits and [CLS] rerank logits of the last request.</summary>
    public (double[][] Sentences, double[] Passages)? LastScores => _last?.Scores;

    public PrunedContext Prune(PruneRequest r, CancellationToken ct = default)
    {
        SentenceSelection.CheckBudget(r);
        string key = r.Question + "\u0001" + string.Join("\u0002", r.Candidates.Select(c => c.Passage.Text));
        if (_last?.Key != key) _last = (key, head.Score(embedder, r.Question, [.. r.Candidates.Select(c => c.Passage.Sentences)], null, ct));
        var sent = _last.Value.Scores.Sentences;
        var pass = ProvenceHead.BestSentence(sent);
        if (r.Budget == int.MaxValue)
        {
            double logit = Math.Log(Options.Threshold / (1 - Options.Threshold));
            return SentenceSelection.Keep(r, sent, pass, logit);
        }
        var ranked = sent.Select((s, c) => s.Select(x => x + Options.PassageWeight * pass[c]).ToArray()).ToArray();
        return SentenceSelection.Keep(r, ranked, pass);
    }
}
