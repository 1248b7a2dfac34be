namespace Pare.Generation;

/// <summary>
/// The slow, obviously correct sampler that <see cref="Sampler"/> must agree with: sort the whole vocabulary by logit,
/// keep the top k, softmax (temperature 1), cut by top-p then min-p, softmax the survivors at the temperature, and
/// walk the cumulative distribution to the uniform draw. Allocates freely; for tests and benchmarks.
/// </summary>
public static class ReferenceSampler
{
    /// <summary>The token that the uniform draw <paramref name="r"/> in [0, 1) selects (argmax at temperature 0).</summary>
    public static int Choose(ReadOnlySpan<float> logits, SamplingOptions o, double r)
    {
        var (tokens, probs) = Distribution(logits, o);
        if (o.Temperature <= 0) return tokens[0];
        return Sampler.Draw(tokens, probs, tokens.Length, r);
    }

    /// <summary>As <see cref="Sampler.Sample"/>, with its random stream: banned tokens, penalty, then <see cref="Choose"/>.</summary>
    public static int Sample(Span<float> logits, IReadOnlyList<int> history, SamplingOptions o, Random rng)
    {
        Sampler.Prepare(logits, history, o, [.. o.BannedTokens], []);
        return o.Temperature <= 0 ? Choose(logits, o, 0) : Choose(logits, o, rng.NextDouble());
    }

    /// <summary>The survivors (largest first) and their final probabilities.</summary>
    public static (int[] Tokens, float[] Probs) Distribution(ReadOnlySpan<float> logits, SamplingOptions o)
    {
        int n = logits.Length;
        var key = new float[n];
        for (int i = 0; i < n; i++) key[i] = float.IsNaN(logits[i]) ? float.NegativeInfinity : logits[i];
        // Largest first, lower token id first among equals.
        var order = Enumerable.Range(0, n).ToArray();
        Array.Sort(order, (a, b) => key[a] != key[b] ? key[b].CompareTo(key[a]) : a.CompareTo(b));
        if (o.Temperature <= 0) return ([order[0]], [1f]);

        int count = o.TopK > 0 ? Math.Min(o.TopK, n) : n;
        var l = order.Take(count).Select(t => key[t]).ToArray();
        var p = new float[count];
        Sampler.Softmax(p, l, 1f);
        if (o.TopP < 1)
        {
            double cum = 0;
            for (int i = 0; i < count; i++)
            {
                cum += p[i];
                if (cum >= o.TopP) { count = i + 1; break; }
            }
        }
        if (o.MinP > 0)
        {
            int keep = 1;
            while (keep < count && p[keep] >= o.MinP * p[0]) keep++;
            count = keep;
        }
        var final = new float[count];
        Sampler.Softmax(final, l.AsSpan(0, count), o.Temperature);
        return (order[..count], final);
    }
}
