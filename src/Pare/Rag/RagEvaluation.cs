using System.Diagnostics;
using Pare.Models.Bert;

namespace Pare.Rag;

/// <summary>Options of <see cref="RagEvaluation.Run"/>.</summary>
public sealed record RagEvalOptions
{
    /// <summary>Candidates per question (the gold passage and retrieved distractors). Default 8.</summary>
    public int Candidates { get; init; } = 8;
    /// <summary>Fractions of the context's tokens removed. Default 25/50/75/90%.</summary>
    public IReadOnlyList<double> Rates { get; init; } = [0.25, 0.5, 0.75, 0.9];
    /// <summary>Candidates the IDCM cascade rescores with the full encoder. Default 3.</summary>
    public int CascadeRescore { get; init; } = 3;
    /// <summary>Token reducer of the cascade's token-pruned first stage (null: only the bi-encoder first stage is run).</summary>
    public ITokenReducer? CascadeReducer { get; init; }
    public string CascadeReducerName { get; init; } = "";
    /// <summary>XTR: document tokens retrieved per query token. Default 100.</summary>
    public int XtrTokens { get; init; } = 100;
}

public sealed record RecallPoint(string Method, double Rate, double Recall, double TokensKept);
public sealed record RerankScore(string Method, double Mrr, double MsPerQuery);
public sealed record RagEvalReport(int Questions, int Pool, int Candidates, double MeanContextTokens, IReadOnlyList<RecallPoint> Recall,
    IReadOnlyList<RecallPoint> OwnAmount, IReadOnlyList<RerankScore> Rerank, double SingleRecallAt10, double XtrRecallAt10,
    long SingleIndexBytes, long XtrIndexBytes, int XtrTokens, double Seconds);

/// <summary>
/// Runs set (a) (<see cref="ClozeSets"/>): for each question the candidates are the gold passage and the pool passages of
/// other documents the bi-encoder ranks highest; every pruner runs at every removal rate (budget = (1 − rate) × the
/// candidates' encoder tokens) and at its own amount (no budget); answer-sentence recall = share of questions whose answer
/// sentence is kept. Reranking MRR of the gold passage among the candidates: bi-encoder, best sentence, Provence head
/// (full encoder on all candidates) and the IDCM cascades, with wall time per query. Retrieval over the whole pool:
/// single-vector recall@10 against XTR's.
/// </summary>
public static class RagEvaluation
{
    public static RagEvalReport Run(Embedder e, ProvenceHead head, ClozeSet set, RagEvalOptions? options = null, IProgress<double>? progress = null, CancellationToken ct = default)
    {
        var o = options ?? new RagEvalOptions();
        var sw = Stopwatch.StartNew();
        var poolVectors = e.Embed([.. set.Pool.Select(p => p.Text)], null, ct);
        var qVectors = e.Embed([.. set.Questions.Select(q => q.Question)], null, ct);
        var tokenCache = new Dictionary<string, int>(StringComparer.Ordinal);
        int Count(string s) => tokenCache.TryGetValue(s, out int n) ? n : tokenCache[s] = e.Pieces(s).Length;
        IContextPruner[] pruners =
        [
            new NoPruning(), new TopKPassages(), new SimilarityThreshold(e), new ProvencePruner(e, head), new CragPruner(e), new CoarseToFine(e),
        ];
        var hits = new Dictionary<(string, double), (double Recall, double Kept)>();
        var own = new Dictionary<string, (double Recall, double Kept)>();
        var rr = new Dictionary<string, (double Rr, double Ms)>();
        void AddRr(string m, int[] ranking, int gold, double ms)
        {
            int rank = Array.IndexOf(ranking, gold) + 1;
            var (a, b) = rr.GetValueOrDefault(m);
            rr[m] = (a + 1.0 / rank, b + ms);
        }
        var provence = new ProvenceStage(e, head);
        var cascade = new IdcmCascade(new BiEncoderStage(), provence, new IdcmOptions { Rescore = o.CascadeRescore });
        var cascadeTp = o.CascadeReducer == null ? null
            : new IdcmCascade(new ProvenceClsStage(e, head, o.CascadeReducer, o.CascadeReducerName), provence, new IdcmOptions { Rescore = o.CascadeRescore });
        double contextTokens = 0;
        int done = 0, steps = set.Questions.Count * 2;
        foreach (var (q, qi) in set.Questions.Select((q, i) => (q, i)))
        {
            ct.ThrowIfCancellationRequested();
            var ids = ClozeSets.Candidates(set, q, qVectors[qi], poolVectors, o.Candidates);
            var cands = ids.Select(i => new Candidate(set.Pool[i], Embedder.Dot(qVectors[qi], poolVectors[i]), poolVectors[i])).ToList();
            int gold = ids.IndexOf(q.Gold);
            var req = new PruneRequest(q.Question, cands, int.MaxValue, Count);
            int total = req.TotalTokens;
            contextTokens += total;
            foreach (var p in pruners)
            {
                foreach (double rate in o.Rates)
                {
                    var pc = p.Prune(req with { Budget = Math.Max(1, (int)Math.Round((1 - rate) * total)) }, ct);
                    var (a, b) = hits.GetValueOrDefault((p.Name, rate));
                    hits[(p.Name, rate)] = (a + (pc.Keeps(gold, q.AnswerSentence) ? 1 : 0), b + pc.TokensKept / (double)total);
                }
                var natural = p.Prune(req, ct);
                var (x, y) = own.GetValueOrDefault(p.Name);
                own[p.Name] = (x + (natural.Keeps(gold, q.AnswerSentence) ? 1 : 0), y + natural.TokensKept / (double)total);
                if (p is SimilarityThreshold) AddRr("best sentence (similarity)", Order(natural.PassageScores), gold, 0);
                if (p is ProvencePruner pp && pp.LastScores is { } ls) AddRr($"Provence [CLS] rerank head, all {cands.Count}", Order(ls.Passages), gold, 0);
            }
            AddRr("bi-encoder (index cosine)", Order([.. cands.Select(c => c.Score)]), gold, 0);
            progress?.Report(++done / (double)steps);
            var t = Stopwatch.StartNew();
            var full = cascade.RankFull(q.Question, cands, ct);
            AddRr($"full encoder, Provence best sentence, all {cands.Count}", full, gold, t.Elapsed.TotalMilliseconds);
            t.Restart();
            AddRr($"IDCM: bi-encoder -> full on top {o.CascadeRescore}", cascade.Rank(q.Question, cands, ct), gold, t.Elapsed.TotalMilliseconds);
            if (cascadeTp != null)
            {
                t.Restart();
                AddRr($"IDCM: {o.CascadeReducerName} -> full on top {o.CascadeRescore}", cascadeTp.Rank(q.Question, cands, ct), gold, t.Elapsed.TotalMilliseconds);
            }
            progress?.Report(++done / (double)steps);
        }
        int n = set.Questions.Count;
        // Retrieval over the whole pool: single vector vs XTR.
        var xtr = new XtrRetrieval(e, [.. set.Pool.Select(p => p.Text)], new XtrOptions { TokensPerQueryToken = o.XtrTokens }, ct);
        double single10 = 0, xtr10 = 0;
        foreach (var (q, qi) in set.Questions.Select((q, i) => (q, i)))
        {
            var ranking = Order([.. poolVectors.Select(v => (double)Embedder.Dot(qVectors[qi], v))]);
            if (Array.IndexOf(ranking, q.Gold) < 10) single10++;
            if (Array.IndexOf(xtr.Search(e, q.Question, ct), q.Gold) < 10) xtr10++;
        }
        return new RagEvalReport(n, set.Pool.Count, o.Candidates, contextTokens / n,
            [.. hits.Select(h => new RecallPoint(h.Key.Item1, h.Key.Item2, h.Value.Recall / n, h.Value.Kept / n))],
            [.. own.Select(h => new RecallPoint(h.Key, double.NaN, h.Value.Recall / n, h.Value.Kept / n))],
            [.. rr.Select(r => new RerankScore(r.Key, r.Value.Rr / n, r.Value.Ms / n))],
            single10 / n, xtr10 / n, (long)poolVectors.Length * e.Dim * 4, xtr.IndexBytes, xtr.TokenCount, sw.Elapsed.TotalSeconds);
    }

    static int[] Order(double[] scores) => [.. Enumerable.Range(0, scores.Length).OrderByDescending(i => scores[i]).ThenBy(i => i)];
}
