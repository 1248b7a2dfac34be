namespace Pare.Generation;

/// <summary>
/// Chooses the next token: repetition penalty, then top-k, top-p and min-p filtering, then temperature,
/// then a draw from the remaining distribution (or argmax when the temperature is 0).
/// </summary>
public sealed class Sampler
{
    readonly SamplingOptions _o;
    readonly Random _rng;
    int[] _idx = [];
    float[] _p = [], _l = [];

    public Sampler(SamplingOptions options)
    {
        options.Validate();
        _o = options;
        _rng = new Random(unchecked((int)(options.Seed ^ (options.Seed >> 32))));
    }

    /// <summary>Picks a token from <paramref name="logits"/> (modified in place by the penalty) given the tokens so far.</summary>
    public int Sample(Span<float> logits, IReadOnlyList<int> history)
    {
        foreach (int t in _o.BannedTokens)
            if ((uint)t < (uint)logits.Length) logits[t] = float.NegativeInfinity;
        ApplyRepetitionPenalty(logits, history);
        if (_o.Temperature <= 0) return ArgMax(logits);
        return Draw(Probabilities(logits));
    }

    /// <summary>The index of the largest value (the first on ties).</summary>
    public static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }

    void ApplyRepetitionPenalty(Span<float> logits, IReadOnlyList<int> history)
    {
        if (_o.RepetitionPenalty == 1f || _o.RepetitionWindow == 0) return;
        var seen = new HashSet<int>();
        for (int i = Math.Max(0, history.Count - _o.RepetitionWindow); i < history.Count; i++)
        {
            int t = history[i];
            if ((uint)t < (uint)logits.Length && seen.Add(t))
                logits[t] = logits[t] > 0 ? logits[t] / _o.RepetitionPenalty : logits[t] * _o.RepetitionPenalty;
        }
    }

    /// <summary>The filtered, renormalized distribution as (token, probability) pairs sorted by probability.</summary>
    public (int[] Tokens, float[] Probs, int Count) Probabilities(ReadOnlySpan<float> logits)
    {
        int n = logits.Length;
        if (_idx.Length < n) { _idx = new int[n]; _p = new float[n]; }
        var idx = _idx.AsSpan(0, n);
        var p = _p.AsSpan(0, n);
        for (int i = 0; i < n; i++) { idx[i] = i; p[i] = logits[i]; }
        // Sort descending by logit (keys and indices together).
        p.Sort(idx, (a, b) => b.CompareTo(a));
        int count = _o.TopK > 0 ? Math.Min(_o.TopK, n) : n;

        // As llama.cpp: top-p and min-p judge the temperature-1 distribution; the temperature shapes the draw.
        if (_l.Length < count) _l = new float[count];
        var l = _l.AsSpan(0, count);
        p[..count].CopyTo(l);
        Softmax(p[..count], l, 1f);
        if (_o.TopP < 1)
        {
            double cum = 0;
            for (int i = 0; i < count; i++)
            {
                cum += p[i];
                if (cum >= _o.TopP) { count = i + 1; break; }
            }
        }
        if (_o.MinP > 0)
        {
            float floor = _o.MinP * p[0];
            int keep = 1;
            while (keep < count && p[keep] >= floor) keep++;
            count = keep;
        }
        Softmax(p[..count], l[..count], _o.Temperature);
        return (_idx, _p, count);
    }

    /// <summary>p = softmax(logits / temperature), max-subtracted (logits sorted descending, so the max is first).</summary>
    static void Softmax(Span<float> p, ReadOnlySpan<float> sortedLogits, float temperature)
    {
        double sum = 0;
        for (int i = 0; i < p.Length; i++) { p[i] = MathF.Exp((sortedLogits[i] - sortedLogits[0]) / temperature); sum += p[i]; }
        for (int i = 0; i < p.Length; i++) p[i] = (float)(p[i] / sum);
    }

    int Draw((int[] Tokens, float[] Probs, int Count) d)
    {
        double r = _rng.NextDouble(), cum = 0;
        for (int i = 0; i < d.Count; i++)
        {
            cum += d.Probs[i];
            if (r < cum) return d.Tokens[i];
        }
        return d.Tokens[d.Count - 1];
    }
}
