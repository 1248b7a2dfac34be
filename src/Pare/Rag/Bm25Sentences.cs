namespace Pare.Rag;

/// <summary>
/// Scores of every sentence of a set of passages for a question, the cheap stage of an intra-passage cascade
/// (<see cref="SentenceCascadeStage"/>). One stage runs the encoder (<see cref="BestSentenceStage"/>), the other counts words
/// (<see cref="Bm25Sentences"/>).
/// </summary>
public interface ISentenceScorer
{
    string Name { get; }
    double[][] SentenceScores(string question, IReadOnlyList<IReadOnlyList<string>> passages, CancellationToken ct = default);
}

/// <summary>
/// Okapi BM25 (Robertson et al.) with every sentence of the candidates as a document: IDF from the candidates' sentences,
/// term frequency saturated by <paramref name="k1"/>, length normalized by <paramref name="b"/> (the usual 1.2 and 0.75).
/// Words are the lowercase runs of letters and digits. No model and no pass: microseconds per question, the classic first
/// stage of a reranking cascade (IDCM's ESM is a small learned model; a lexical one is the cheapest ESM there is).
/// </summary>
public sealed class Bm25Sentences(double k1 = 1.2, double b = 0.75) : ISentenceScorer, IPassageScorer
{
    public string Name => "BM25 over the candidates' sentences";

    /// <summary>The candidate's best sentence score (a passage-level first stage).</summary>
    public double[] Score(string question, IReadOnlyList<Candidate> candidates, CancellationToken ct = default) =>
        [.. SentenceScores(question, [.. candidates.Select(c => c.Passage.Sentences)], ct).Select(s => s.Length == 0 ? double.NegativeInfinity : s.Max())];

    public double[][] SentenceScores(string question, IReadOnlyList<IReadOnlyList<string>> passages, CancellationToken ct = default)
    {
        var docs = passages.Select(p => p.Select(Words).ToArray()).ToArray();
        int n = docs.Sum(d => d.Length);
        if (n == 0) return [.. docs.Select(_ => Array.Empty<double>())];
        double avgLen = Math.Max(1, docs.Sum(d => d.Sum(s => s.Count)) / (double)n);
        var df = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var s in docs.SelectMany(d => d))
            foreach (var w in s.Distinct()) df[w] = df.GetValueOrDefault(w) + 1;
        var terms = Words(question).Distinct().ToArray();
        return [.. docs.Select(d => d.Select(s =>
        {
            ct.ThrowIfCancellationRequested();
            double score = 0;
            foreach (var t in terms)
            {
                int tf = s.Count(w => w == t);
                if (tf == 0) continue;
                int nt = df[t];
                double idf = Math.Log(1 + (n - nt + 0.5) / (nt + 0.5));
                score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * s.Count / avgLen));
            }
            return score;
        }).ToArray())];
    }

    /// <summary>Lowercase runs of letters and digits.</summary>
    public static List<string> Words(string text)
    {
        var words = new List<string>();
        int start = -1;
        for (int i = 0; i <= text.Length; i++)
        {
            bool inWord = i < text.Length && char.IsLetterOrDigit(text[i]);
            if (inWord && start < 0) start = i;
            else if (!inWord && start >= 0) { words.Add(text[start..i].ToLowerInvariant()); start = -1; }
        }
        return words;
    }
}
