namespace Pare.Evaluation;

/// <summary>
/// An interpolated Kneser-Ney token trigram model (Kneser &amp; Ney 1995; Chen &amp; Goodman 1998, section 3), the baseline the
/// reference models are compared with. With D_n = n1 / (n1 + 2 n2) per order (n_k: n-grams seen exactly k times):
/// <code>
/// P3(w | u v) = max(c(uvw) − D3, 0) / c(uv·) + D3 · N1+(uv·) / c(uv·) · P2(w | v)       (P2 alone when uv was never seen)
/// P2(w | v)   = max(N1+(·vw) − D2, 0) / N1+(·v·) + D2 · N1+(v·) / N1+(·v·) · P1(w)     (continuation counts)
/// P1(w)       = max(N1+(·w) − D1, 0) / N1+(··) + D1 · N1+(·) / N1+(··) · 1 / V         (interpolated with uniform)
/// </code>
/// Every level sums to 1 over the vocabulary, so unseen tokens keep some probability.
/// </summary>
public sealed class KneserNey
{
    readonly int _vocab;
    // Trigram counts c(uvw); per context uv: total c(uv·) and distinct followers N1+(uv·).
    readonly Dictionary<long, int> _c3 = [];
    readonly Dictionary<long, (int Total, int Types)> _ctx3 = [];
    // Continuation bigram counts N1+(·vw); per v: Σ_w N1+(·vw) and N1+(v·) (distinct w).
    readonly Dictionary<long, int> _n2 = [];
    readonly Dictionary<int, (int Total, int Types)> _ctx2 = [];
    // Continuation unigram counts N1+(·w) (distinct v before w).
    readonly int[] _n1;
    readonly long _n1Total;
    readonly int _n1Types;

    public double D1 { get; }
    public double D2 { get; }
    public double D3 { get; }
    public int VocabSize => _vocab;

    public KneserNey(ReadOnlySpan<int> tokens, int vocabSize)
    {
        if (vocabSize <= 0) throw new ArgumentOutOfRangeException(nameof(vocabSize));
        _vocab = vocabSize;
        foreach (int t in tokens)
            if ((uint)t >= (uint)vocabSize) throw new PareException($"token id {t} is outside the vocabulary of {vocabSize}");
        for (int i = 2; i < tokens.Length; i++)
        {
            long k = Key3(tokens[i - 2], tokens[i - 1], tokens[i]);
            int c = _c3.GetValueOrDefault(k);
            _c3[k] = c + 1;
            long ctx = Key2(tokens[i - 2], tokens[i - 1]);
            var (total, types) = _ctx3.GetValueOrDefault(ctx);
            _ctx3[ctx] = (total + 1, types + (c == 0 ? 1 : 0));
            if (c == 0)
            {
                // A new trigram type uvw adds one distinct left context u to the bigram vw.
                long b = Key2(tokens[i - 1], tokens[i]);
                int n = _n2.GetValueOrDefault(b);
                _n2[b] = n + 1;
                var (t2, ty2) = _ctx2.GetValueOrDefault(tokens[i - 1]);
                _ctx2[tokens[i - 1]] = (t2 + 1, ty2 + (n == 0 ? 1 : 0));
            }
        }
        _n1 = new int[vocabSize];
        foreach (var b in _n2.Keys) _n1[(int)(b % vocabSize)]++; // each bigram type vw adds one distinct left context v to w
        foreach (int n in _n1) { _n1Total += n; if (n > 0) _n1Types++; }
        D3 = Discount(_c3.Values);
        D2 = Discount(_n2.Values);
        D1 = Discount(_n1);
    }

    /// <summary>n1 / (n1 + 2 n2), clamped into (0, 1).</summary>
    static double Discount(IEnumerable<int> counts)
    {
        long n1 = 0, n2 = 0;
        foreach (int c in counts) { if (c == 1) n1++; else if (c == 2) n2++; }
        return n1 + n2 == 0 ? 0.5 : Math.Clamp((double)n1 / (n1 + 2 * n2), 0.05, 0.95);
    }

    long Key2(int a, int b) => (long)a * _vocab + b;
    long Key3(int a, int b, int c) => ((long)a * _vocab + b) * _vocab + c;

    public double P1(int w)
    {
        double uniform = 1.0 / _vocab;
        if (_n1Total == 0) return uniform;
        return Math.Max(_n1[w] - D1, 0) / _n1Total + D1 * _n1Types / _n1Total * uniform;
    }

    public double P2(int v, int w)
    {
        if (!_ctx2.TryGetValue(v, out var ctx)) return P1(w);
        int n = _n2.GetValueOrDefault(Key2(v, w));
        return Math.Max(n - D2, 0) / ctx.Total + D2 * ctx.Types / ctx.Total * P1(w);
    }

    public double P3(int u, int v, int w)
    {
        if (!_ctx3.TryGetValue(Key2(u, v), out var ctx)) return P2(v, w);
        int c = _c3.GetValueOrDefault(Key3(u, v, w));
        return Math.Max(c - D3, 0) / ctx.Total + D3 * ctx.Types / ctx.Total * P2(v, w);
    }

    /// <summary>Perplexity over tokens 1..n−1 (token 1 with a bigram context, the rest with trigram contexts).</summary>
    public PerplexityResult Evaluate(ReadOnlySpan<int> tokens)
    {
        if (tokens.Length < 2) throw new PareException("perplexity needs at least 2 tokens");
        double nll = 0;
        for (int i = 1; i < tokens.Length; i++)
        {
            if ((uint)tokens[i] >= (uint)_vocab) throw new PareException($"token id {tokens[i]} is outside the vocabulary of {_vocab}");
            double p = i == 1 ? P2(tokens[0], tokens[1]) : P3(tokens[i - 2], tokens[i - 1], tokens[i]);
            nll -= Math.Log(p);
        }
        double mean = nll / (tokens.Length - 1);
        return new PerplexityResult(Math.Exp(mean), mean, tokens.Length - 1, 1);
    }
}
