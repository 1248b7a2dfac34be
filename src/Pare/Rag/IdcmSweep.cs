using System.Diagnostics;

namespace Pare.Rag;

/// <summary>Options of <see cref="IdcmSweep.Run"/>.</summary>
public sealed record IdcmSweepOptions
{
    /// <summary>Candidates per question (the gold passage and retrieved distractors). Default 8.</summary>
    public int Candidates { get; init; } = 8;
    /// <summary>Candidates the ETM rescores, one cascade per value. Default 1 to 7 (8 is the full model plus the ESM).</summary>
    public IReadOnlyList<int> Rescore { get; init; } = [1, 2, 3, 4, 5, 6, 7];
    /// <summary>Largest MRR loss against the full model at which a cascade counts as equal quality. Default 0.01.</summary>
    public double Tolerance { get; init; } = 0.01;
}

/// <summary>One cascade: ESM on every candidate, ETM on its top <see cref="Rescore"/>; ms = both stages, wall, per question.</summary>
public sealed record IdcmPoint(string Selection, int Rescore, double Mrr, double MsPerQuery, double SelectionMs, double EffectiveMs, double Recall);

/// <summary>A stage alone on every candidate: its MRR and cost.</summary>
public sealed record IdcmStageScore(string Stage, double Mrr, double MsPerQuery);

public sealed record IdcmSweepReport(int Questions, int Candidates, string Effective, double FullMrr, double FullMs,
    IReadOnlyList<IdcmStageScore> Stages, IReadOnlyList<IdcmPoint> Points, IdcmPoint? Cheapest, double Tolerance, double Seconds);

/// <summary>
/// The IDCM acceptance on set (a): for each question of <see cref="ClozeSets"/> the candidates are the gold passage and
/// the retrieved distractors; the full model (ETM on all candidates) is timed against every cascade (each ESM × each
/// rescore count), every stage run for real and timed per question (wall; stages cache nothing across calls). MRR of the
/// gold passage. The cheapest cascade whose MRR is at least the full model's minus <see cref="IdcmSweepOptions.Tolerance"/>
/// is the answer to "latency at equal quality". Each stage is warmed up (JIT) on the first question before timing.
/// "recall" of a point is the share of questions whose gold passage is in the ESM's top N (what the ETM can still fix).
/// </summary>
public static class IdcmSweep
{
    public static IdcmSweepReport Run(Embedder e, ClozeSet set, IPassageScorer effective, IReadOnlyList<IPassageScorer> selections,
        IdcmSweepOptions? options = null, IProgress<double>? progress = null, CancellationToken ct = default)
    {
        var o = options ?? new IdcmSweepOptions();
        if (o.Rescore.Any(n => n < 1 || n > o.Candidates)) throw new PareException($"rescore counts must be between 1 and {o.Candidates}");
        var sw = Stopwatch.StartNew();
        var poolVectors = e.Embed([.. set.Pool.Select(p => p.Text)], null, ct);
        var qVectors = e.Embed([.. set.Questions.Select(q => q.Question)], null, ct);
        double fullRr = 0, fullMs = 0;
        var stageRr = new double[selections.Count];
        var stageMs = new double[selections.Count];
        var rr = new double[selections.Count, o.Rescore.Count];
        var ms = new double[selections.Count, o.Rescore.Count];
        var etmMs = new double[selections.Count, o.Rescore.Count];
        var inTop = new double[selections.Count, o.Rescore.Count];
        var cascades = selections.Select(s => new IdcmCascade(s, effective)).ToArray();
        for (int qi = 0; qi < set.Questions.Count; qi++)
        {
            ct.ThrowIfCancellationRequested();
            var q = set.Questions[qi];
            var ids = ClozeSets.Candidates(set, q, qVectors[qi], poolVectors, o.Candidates);
            var cands = ids.Select(i => new Candidate(set.Pool[i], Embedder.Dot(qVectors[qi], poolVectors[i]), poolVectors[i])).ToList();
            int gold = ids.IndexOf(q.Gold);
            if (qi == 0)
            {
                effective.Score(q.Question, cands, ct);
                foreach (var s in selections) s.Score(q.Question, cands, ct);
            }
            var t = Stopwatch.StartNew();
            var full = IdcmCascade.Order(effective.Score(q.Question, cands, ct));
            fullMs += t.Elapsed.TotalMilliseconds;
            fullRr += Rr(full, gold);
            for (int si = 0; si < selections.Count; si++)
            {
                t.Restart();
                var esm = selections[si].Score(q.Question, cands, ct);
                double esmMs = t.Elapsed.TotalMilliseconds;
                stageMs[si] += esmMs;
                var esmOrder = IdcmCascade.Order(esm);
                stageRr[si] += Rr(esmOrder, gold);
                for (int ni = 0; ni < o.Rescore.Count; ni++)
                {
                    int n = o.Rescore[ni];
                    t.Restart();
                    var ranking = cascades[si].Rank(q.Question, cands, esm, n, ct);
                    double rankMs = t.Elapsed.TotalMilliseconds;
                    etmMs[si, ni] += rankMs;
                    ms[si, ni] += esmMs + rankMs;
                    rr[si, ni] += Rr(ranking, gold);
                    if (Array.IndexOf(esmOrder, gold) < n) inTop[si, ni]++;
                }
            }
            progress?.Report((qi + 1) / (double)set.Questions.Count);
        }
        int nq = set.Questions.Count;
        var points = new List<IdcmPoint>();
        for (int si = 0; si < selections.Count; si++)
            for (int ni = 0; ni < o.Rescore.Count; ni++)
                points.Add(new IdcmPoint(selections[si].Name, o.Rescore[ni], rr[si, ni] / nq, ms[si, ni] / nq, stageMs[si] / nq, etmMs[si, ni] / nq, inTop[si, ni] / nq));
        double fm = fullRr / nq;
        var cheapest = points.Where(p => p.Mrr >= fm - o.Tolerance - 1e-12).OrderBy(p => p.MsPerQuery).FirstOrDefault();
        return new IdcmSweepReport(nq, o.Candidates, effective.Name, fm, fullMs / nq,
            [.. selections.Select((s, i) => new IdcmStageScore(s.Name, stageRr[i] / nq, stageMs[i] / nq))], points, cheapest, o.Tolerance, sw.Elapsed.TotalSeconds);
    }

    static double Rr(int[] ranking, int gold) => 1.0 / (Array.IndexOf(ranking, gold) + 1);
}
