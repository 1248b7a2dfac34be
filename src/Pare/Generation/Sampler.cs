using Pare.Kernels;

namespace Pare.Generation;

/// <summary>
/// Chooses the next token: repetition penalty, then top-k, top-p and min-p filtering, then temperature,
/// then a draw from the remaining distribution (or argmax when the temperature is 0).
/// </summary>
/// <remarks>
/// Cost per token is O(vocab) for the selection plus work on the survivors only: top-k is a bounded heap over one
/// vectorized pass (no sort of the vocabulary), and the softmax, top-p and min-p see just the k survivors. With top-k
/// off, the candidates grow geometrically until top-p or min-p cuts inside them (the normalizer is one pass over the
/// vocabulary). No allocation after the first token. The arithmetic on the survivors is that of
/// <see cref="ReferenceSampler"/> (a full sort), so both pick the same token for the same random draw.
/// Ties between equal logits go to the lower token id. NaN logits count as -infinity.
/// </remarks>
public sealed class Sampler
{
    readonly SamplingOptions _o;
    readonly Random _rng;
    readonly TopSelector _top = new();
    readonly HashSet<int> _seen = [];
    readonly int[] _banned;
    float[] _p = [];

    public Sampler(SamplingOptions options)
    {
        options.Validate();
        _o = options;
        _banned = [.. options.BannedTokens];
        _rng = new Random(unchecked((int)(options.Seed ^ (options.Seed >> 32))));
    }

    /// <summary>Picks a token from <paramref name="logits"/> (modified in place by the penalty) given the tokens so far.</summary>
    public int Sample(Span<float> logits, IReadOnlyList<int> history)
    {
        Prepare(logits, history, _o, _banned, _seen);
        if (_o.Temperature <= 0) return ArgMax(logits);
        // The draw is taken after the distribution, as before (one NextDouble per sampled token).
        int count = Distribution(logits);
        return Draw(_top.Ids, _p, count, _rng.NextDouble());
    }

    /// <summary>
    /// The token that the uniform draw <paramref name="r"/> in [0, 1) selects from <paramref name="logits"/> after the
    /// filters (banned tokens and the penalty are not applied here). The random-free part of <see cref="Sample"/>.
    /// </summary>
    public int Choose(ReadOnlySpan<float> logits, double r)
    {
        if (_o.Temperature <= 0) return ArgMax(logits);
        int count = Distribution(logits);
        return Draw(_top.Ids, _p, count, r);
    }

    /// <summary>The filtered, renormalized distribution as (token, probability) pairs sorted by probability (the sampler's own buffers: valid until its next call).</summary>
    public (int[] Tokens, float[] Probs, int Count) Probabilities(ReadOnlySpan<float> logits)
    {
        int count = Distribution(logits);
        return (_top.Ids, _p, count);
    }

    /// <summary>The index of the largest value (the first on ties; NaN counts as -infinity).</summary>
    public static int ArgMax(ReadOnlySpan<float> x)
    {
        if (x.Length == 0) return 0;
        // Vectorized maximum, then the first position holding it; a NaN maximum or a miss falls back to the plain scan.
        float max = Ops.Max(x);
        if (!float.IsNaN(max))
        {
            int at = TopSelector.IndexOfFirst(x, max);
            if (at >= 0) return at;
        }
        int best = 0;
        float bestValue = float.IsNaN(x[0]) ? float.NegativeInfinity : x[0];
        for (int i = 1; i < x.Length; i++) if (x[i] > bestValue) { best = i; bestValue = x[i]; }
        return best;
    }

    /// <summary>Banned tokens to -infinity, then the repetition penalty (shared with <see cref="ReferenceSampler"/>).</summary>
    internal static void Prepare(Span<float> logits, IReadOnlyList<int> history, SamplingOptions o, ReadOnlySpan<int> banned, HashSet<int> seen)
    {
        foreach (int t in banned)
            if ((uint)t < (uint)logits.Length) logits[t] = float.NegativeInfinity;
        if (o.RepetitionPenalty == 1f || o.RepetitionWindow == 0) return;
        seen.Clear();
        for (int i = Math.Max(0, history.Count - o.RepetitionWindow); i < history.Count; i++)
        {
            int t = history[i];
            if ((uint)t < (uint)logits.Length && seen.Add(t))
                logits[t] = logits[t] > 0 ? logits[t] / o.RepetitionPenalty : logits[t] * o.RepetitionPenalty;
        }
    }

    /// <summary>
    /// Fills _top (ids and temperature-1 logits, sorted) and _p (final probabilities) for the survivors; returns their count.
    /// </summary>
    int Distribution(ReadOnlySpan<float> logits)
    {
        int n = logits.Length;
        if (n == 0) throw new PareException("no logits to sample from");
        if (_o.TopK > 0 && _o.TopK < n)
        {
            // The usual case: softmax over the k survivors only, exactly as a full sort would see them.
            int k = _o.TopK;
            _top.Select(logits, k);
            EnsureScratch(k);
            var l = _top.Keys.AsSpan(0, k);
            var p = _p.AsSpan(0, k);
            Softmax(p, l, 1f);
            int count = Cut(p, k);
            Softmax(p[..count], l[..count], _o.Temperature);
            return count;
        }
        return DistributionWithoutTopK(logits);
    }

    /// <summary>
    /// Top-k off: probabilities are normalized over the whole vocabulary, but only a prefix of the sorted order can
    /// survive top-p and min-p. Select a prefix, grow it until a cut falls inside it (or it is everything).
    /// </summary>
    int DistributionWithoutTopK(ReadOnlySpan<float> logits)
    {
        int n = logits.Length;
        float top = logits[ArgMax(logits)];
        if (float.IsNaN(top)) top = float.NegativeInfinity;
        // The temperature-1 normalizer, summed as the reference does (float terms, double sum); NaN terms count as 0.
        double sum = 0;
        for (int i = 0; i < n; i++)
        {
            float e = MathF.Exp(logits[i] - top);
            if (!float.IsNaN(e)) sum += e;
        }
        int m = Math.Min(n, 64);
        while (true)
        {
            _top.Select(logits, m);
            EnsureScratch(m);
            var l = _top.Keys.AsSpan(0, m);
            var p = _p.AsSpan(0, m);
            for (int i = 0; i < m; i++) p[i] = (float)(MathF.Exp(l[i] - l[0]) / sum);
            int count = Cut(p, m);
            // A cut strictly inside the prefix is final: later tokens are less likely and are cut too.
            if (count < m || m == n)
            {
                Softmax(p[..count], l[..count], _o.Temperature);
                return count;
            }
            m = (int)Math.Min(n, m * 8L);
        }
    }

    /// <summary>Top-p (smallest prefix reaching p), then min-p (at least min-p times the top probability); the kept prefix length.</summary>
    int Cut(ReadOnlySpan<float> p, int count)
    {
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
        return count;
    }

    void EnsureScratch(int m)
    {
        if (_p.Length < m) _p = new float[Math.Max(m, 64)];
    }

    /// <summary>p = softmax(logits / temperature), max-subtracted (logits sorted descending, so the max is first).</summary>
    internal static void Softmax(Span<float> p, ReadOnlySpan<float> sortedLogits, float temperature)
    {
        double sum = 0;
        for (int i = 0; i < p.Length; i++) { p[i] = MathF.Exp((sortedLogits[i] - sortedLogits[0]) / temperature); sum += p[i]; }
        for (int i = 0; i < p.Length; i++) p[i] = (float)(p[i] / sum);
    }

    /// <summary>The first token whose cumulative probability exceeds r (the last one if rounding leaves r above all).</summary>
    internal static int Draw(ReadOnlySpan<int> tokens, ReadOnlySpan<float> probs, int count, double r)
    {
        double cum = 0;
        for (int i = 0; i < count; i++)
        {
            cum += probs[i];
            if (r < cum) return tokens[i];
        }
        return tokens[count - 1];
    }
}
