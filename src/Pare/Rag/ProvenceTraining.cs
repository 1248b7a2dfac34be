namespace Pare.Rag;

/// <summary>Options of <see cref="ProvenceTraining"/>.</summary>
public sealed record ProvenceTrainingOptions
{
    /// <summary>Questions (each gives one positive and one negative passage). Default 300.</summary>
    public int Questions { get; init; } = 300;
    /// <summary>Full-batch Adam steps. Default 400.</summary>
    public int Steps { get; init; } = 400;
    public double LearningRate { get; init; } = 0.01;
    /// <summary>L2 penalty on the weights. Default 1e-3.</summary>
    public double L2 { get; init; } = 1e-3;
    public ulong Seed { get; init; } = 11;
}

/// <summary>
/// Trains <see cref="ProvenceHead"/> on cloze questions built from a training text (the corpus's train split, never
/// the test split the evaluation uses): for each question one joint pass over its passage (the answer sentence labeled
/// 1, the others 0, rerank label 1) and one over a hard negative, the next passage of the same document or a random
/// one (all sentences 0, rerank 0). The encoder is frozen; the features are computed once and two logistic regressions
/// are fitted by full-batch Adam with class-balanced weights.
/// </summary>
public static class ProvenceTraining
{
    public sealed record Result(ProvenceHead Head, int Examples, int SentenceExamples, double SentenceAccuracy, double RerankAccuracy);

    public static Result Train(Embedder e, string text, ProvenceTrainingOptions? options = null, IProgress<double>? progress = null, CancellationToken ct = default)
    {
        var o = options ?? new ProvenceTrainingOptions();
        var set = ClozeSets.Build(text, new ClozeOptions { PoolSize = Math.Max(4 * o.Questions, 50), Questions = o.Questions, Seed = o.Seed });
        var rng = new Tensors.SplitMix64(o.Seed + 1);
        var sx = new List<float[]>(); var sy = new List<float>();
        var rx = new List<float[]>(); var ry = new List<float>();
        int done = 0;
        foreach (var chunk in set.Questions.Chunk(8))
        {
            ct.ThrowIfCancellationRequested();
            var passages = new List<IReadOnlyList<string>>(); var labels = new List<int>(); var questions = new List<string>();
            foreach (var q in chunk)
            {
                int neg = set.Pool.Select((p, i) => (p, i)).Where(x => x.i != q.Gold && x.p.Source == set.Pool[q.Gold].Source).Select(x => x.i).FirstOrDefault(-1);
                if (neg < 0) do neg = rng.NextInt(set.Pool.Count); while (neg == q.Gold);
                passages.Add(set.Pool[q.Gold].Sentences); labels.Add(q.AnswerSentence); questions.Add(q.Question);
                passages.Add(set.Pool[neg].Sentences); labels.Add(-1); questions.Add(q.Question);
            }
            var joint = passages.Select((p, i) => e.Joint(questions[i], p)).ToArray();
            var h = e.Hidden([.. joint.Select(j => j.Ids)], null, ct);
            for (int c = 0; c < joint.Length; c++)
            {
                var (_, qs, spans) = joint[c];
                var mq = Embedder.MeanRows(h, c, qs.Start, qs.End);
                rx.Add(ProvenceHead.RerankFeatures(h.Row(c, 0), Embedder.MeanRows(h, c, spans[0].Start, spans[^1].End), mq));
                ry.Add(labels[c] >= 0 ? 1 : 0);
                for (int s = 0; s < spans.Length; s++)
                {
                    if (spans[s].End <= spans[s].Start) continue;
                    sx.Add(ProvenceHead.SentenceFeatures(Embedder.MeanRows(h, c, spans[s].Start, spans[s].End), mq));
                    sy.Add(s == labels[c] ? 1 : 0);
                }
            }
            done += chunk.Length;
            progress?.Report(0.9 * done / set.Questions.Count);
        }
        var (sw, sb, sacc) = Logistic.Fit(sx, sy, o);
        var (rw, rb, racc) = Logistic.Fit(rx, ry, o);
        progress?.Report(1);
        return new Result(new ProvenceHead(sw, sb, rw, rb), rx.Count, sx.Count, sacc, racc);
    }
}

/// <summary>Class-balanced L2-regularized logistic regression by full-batch Adam, on standardized features (the scaling is
/// folded back into the returned weights).</summary>
public static class Logistic
{
    public static (float[] W, float B, double TrainAccuracy) Fit(List<float[]> x, List<float> y, ProvenceTrainingOptions o)
    {
        int n = x.Count, d = x[0].Length;
        var mean = new double[d]; var std = new double[d];
        foreach (var r in x) for (int j = 0; j < d; j++) mean[j] += r[j] / n;
        foreach (var r in x) for (int j = 0; j < d; j++) std[j] += (r[j] - mean[j]) * (r[j] - mean[j]) / n;
        for (int j = 0; j < d; j++) std[j] = Math.Sqrt(std[j]) + 1e-6;
        var z = x.Select(r => r.Select((v, j) => (v - mean[j]) / std[j]).ToArray()).ToArray();
        double pos = y.Count(v => v > 0.5), wPos = n / (2 * Math.Max(pos, 1)), wNeg = n / (2 * Math.Max(n - pos, 1));
        var w = new double[d + 1]; var m = new double[d + 1]; var v2 = new double[d + 1];
        for (int step = 1; step <= o.Steps; step++)
        {
            var g = new double[d + 1];
            for (int i = 0; i < n; i++)
            {
                double s = w[d];
                for (int j = 0; j < d; j++) s += w[j] * z[i][j];
                double p = 1 / (1 + Math.Exp(-s)), err = (p - y[i]) * (y[i] > 0.5 ? wPos : wNeg) / n;
                for (int j = 0; j < d; j++) g[j] += err * z[i][j];
                g[d] += err;
            }
            for (int j = 0; j < d; j++) g[j] += o.L2 * w[j];
            for (int j = 0; j <= d; j++)
            {
                m[j] = 0.9 * m[j] + 0.1 * g[j];
                v2[j] = 0.999 * v2[j] + 0.001 * g[j] * g[j];
                double mh = m[j] / (1 - Math.Pow(0.9, step)), vh = v2[j] / (1 - Math.Pow(0.999, step));
                w[j] -= o.LearningRate * mh / (Math.Sqrt(vh) + 1e-8);
            }
        }
        var wOut = new float[d];
        double b = w[d];
        for (int j = 0; j < d; j++) { wOut[j] = (float)(w[j] / std[j]); b -= w[j] * mean[j] / std[j]; }
        int correct = 0;
        for (int i = 0; i < n; i++) if ((Embedder.Dot(wOut, x[i]) + b > 0) == (y[i] > 0.5)) correct++;
        return (wOut, (float)b, correct / (double)n);
    }
}
