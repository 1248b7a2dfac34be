using Pare.Models.Bert;

namespace Pare.Rag;

/// <summary>Options of <see cref="IdcmCascade"/>.</summary>
public sealed record IdcmOptions
{
    /// <summary>Candidates the effective (full) model rescores. Default 3.</summary>
    public int Rescore { get; init; } = 3;
    /// <summary>Token reducer of the cheap first stage (a token-pruned encoder); null: the first stage is the bi-encoder
    /// cosine of the index, which costs no encoder pass. Default null.</summary>
    public ITokenReducer? FirstStage { get; init; }
}

/// <summary>
/// Intra-Document Cascading (Hofstätter et al. 2021) for reranking retrieved passages: a cheap selection model (ESM)
/// scores every candidate, and only its top <see cref="IdcmOptions.Rescore"/> go through the effective model (ETM): the
/// full encoder's joint pass scored by the Provence head's best sentence. The ESM is either the token-pruned encoder's
/// joint pass scored by the head's [CLS] rerank logit (token pruning breaks the sentence spans), or the index's bi-encoder cosine. Candidates past the cut keep their ESM order below the rescored ones.
/// </summary>
public sealed class IdcmCascade(Embedder embedder, ProvenceHead head, IdcmOptions? options = null)
{
    public IdcmOptions Options { get; } = options ?? new();

    /// <summary>Ranking of candidate indices, best first.</summary>
    public int[] Rank(string question, IReadOnlyList<Candidate> candidates, CancellationToken ct = default)
    {
        var passages = candidates.Select(c => c.Passage.Sentences).ToList();
        double[] esm = Options.FirstStage == null ? [.. candidates.Select(c => c.Score)]
            : head.Score(embedder, question, passages, Options.FirstStage, ct).Passages;
        var order = Enumerable.Range(0, candidates.Count).OrderByDescending(i => esm[i]).ThenBy(i => i).ToArray();
        var top = order.Take(Options.Rescore).ToArray();
        var etm = ProvenceHead.BestSentence(head.Score(embedder, question, [.. top.Select(i => passages[i])], null, ct).Sentences);
        var rescored = top.Select((c, i) => (c, etm[i])).OrderByDescending(x => x.Item2).ThenBy(x => x.c).Select(x => x.c);
        return [.. rescored, .. order.Skip(Options.Rescore)];
    }

    /// <summary>The full model on every candidate (the cascade's reference).</summary>
    public int[] RankFull(string question, IReadOnlyList<Candidate> candidates, CancellationToken ct = default)
    {
        var etm = ProvenceHead.BestSentence(head.Score(embedder, question, [.. candidates.Select(c => c.Passage.Sentences)], null, ct).Sentences);
        return [.. Enumerable.Range(0, candidates.Count).OrderByDescending(i => etm[i]).ThenBy(i => i)];
    }
}
