namespace Pare.Rag;

/// <summary>Options of <see cref="CragPruner"/>.</summary>
public sealed record CragOptions
{
    /// <summary>Evaluator score (question-passage cosine) at or above which a passage is "correct". Default 0.5.</summary>
    public double Upper { get; init; } = 0.5;
    /// <summary>Score below which a passage is "incorrect". Default 0.2.</summary>
    public double Lower { get; init; } = 0.2;
    /// <summary>Sentences per knowledge strip. Default 1.</summary>
    public int StripSentences { get; init; } = 1;
    /// <summary>Strip score (cosine to the question) a strip needs to survive refinement with no budget. Default 0.3.</summary>
    public double StripThreshold { get; init; } = 0.3;
}

/// <summary>The evaluator's verdict on one retrieved passage.</summary>
public enum CragVerdict { Correct, Ambiguous, Incorrect }

/// <summary>
/// CRAG-style (Corrective RAG, Yan et al. 2024) pruning: a light retrieval evaluator grades each passage correct,
/// ambiguous or incorrect (here: the bi-encoder cosine of question and passage against two thresholds, no extra encoder
/// pass); the action follows the grades: some passage correct → refine the correct ones only; none correct but some
/// ambiguous → refine every passage not incorrect; all incorrect → nothing is kept (CRAG would search the web; there is no
/// web here). Refinement is decompose-then-recompose: each passage is cut into strips, the strips scored against the
/// question and filtered, and the survivors recomposed in reading order. (The CRAG abstract in shared/papers is
/// Clustered RAG, a different method; this follows the description, Corrective RAG.)
/// </summary>
public sealed class CragPruner(Embedder embedder, CragOptions? options = null) : IContextPruner
{
    public CragOptions Options { get; } = options ?? new();
    public string Name => "crag";

    public CragVerdict[] Evaluate(PruneRequest r) =>
        [.. r.Candidates.Select(c => c.Score >= Options.Upper ? CragVerdict.Correct : c.Score < Options.Lower ? CragVerdict.Incorrect : CragVerdict.Ambiguous)];

    public PrunedContext Prune(PruneRequest r, CancellationToken ct = default)
    {
        SentenceSelection.CheckBudget(r);
        var verdicts = Evaluate(r);
        bool anyCorrect = verdicts.Contains(CragVerdict.Correct);
        var used = Enumerable.Range(0, r.Candidates.Count)
            .Where(c => anyCorrect ? verdicts[c] == CragVerdict.Correct : verdicts[c] == CragVerdict.Ambiguous).ToList();
        var passageScores = r.Candidates.Select(c => c.Score).ToArray();
        // Decompose: strips of StripSentences sentences of the passages acted on.
        var strips = new List<(int C, int First, int Count)>();
        foreach (int c in used)
            for (int s = 0; s < r.Candidates[c].Passage.Sentences.Count; s += Options.StripSentences)
                strips.Add((c, s, Math.Min(Options.StripSentences, r.Candidates[c].Passage.Sentences.Count - s)));
        var scores = r.Candidates.Select(c => Enumerable.Repeat(double.NegativeInfinity, c.Passage.Sentences.Count).ToArray()).ToArray();
        if (strips.Count > 0)
        {
            var texts = strips.Select(st => string.Join(' ', r.Candidates[st.C].Passage.Sentences.Skip(st.First).Take(st.Count))).ToList();
            var v = embedder.Embed([r.Question, .. texts], null, ct);
            for (int i = 0; i < strips.Count; i++)
                for (int k = 0; k < strips[i].Count; k++)
                    // A strip's sentences share its score; ties keep reading order.
                    scores[strips[i].C][strips[i].First + k] = Embedder.Dot(v[0], v[i + 1]);
        }
        // Filter, then recompose in reading order (Keep returns reading order); strips never acted on stay out.
        var kept = SentenceSelection.Keep(r, scores, passageScores, r.Budget == int.MaxValue ? Options.StripThreshold : double.NegativeInfinity);
        var filtered = kept.Kept.Where(k => !double.IsNegativeInfinity(scores[k.Candidate][k.Sentence])).ToList();
        return new PrunedContext(filtered, passageScores, filtered.Sum(k => r.CountTokens(r.Candidates[k.Candidate].Passage.Sentences[k.Sentence])));
    }
}
