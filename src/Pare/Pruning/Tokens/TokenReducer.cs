using Pare.Models.Bert;

namespace Pare.Pruning.Tokens;

/// <summary>Options of the token reducers.</summary>
public sealed record TokenPruneOptions
{
    /// <summary>Fraction of a sentence's tokens ([CLS] and [SEP] aside) left after the last reducing block, in (0, 1]. Default 0.5.</summary>
    public double Keep { get; init; } = 0.5;
    /// <summary>Blocks (0-based) after whose attention tokens are reduced; with several, the keep fraction is spread
    /// geometrically over them. Default: block 3 (the fourth; on 6-block MiniLM earlier blocks cost much more quality, see docs/encoders.md).</summary>
    public IReadOnlyList<int> Layers { get; init; } = [3];
}

/// <summary>
/// What the token pruners share: where they act, how many tokens each sentence keeps at each block, and turning
/// "which tokens go where" into the encoder's slot assignment. [CLS] (first) and [SEP] (last) are never touched.
/// </summary>
public abstract class TokenReducer : ITokenReducer
{
    public TokenPruneOptions Options { get; }
    readonly int[] _layers;

    protected TokenReducer(TokenPruneOptions options)
    {
        if (!(options.Keep > 0 && options.Keep <= 1)) throw new PareException($"keep fraction {options.Keep} must be in (0, 1]");
        if (options.Layers.Count == 0) throw new PareException("token pruning needs at least one layer");
        if (options.Layers.Any(l => l < 0)) throw new PareException("token pruning layers must be 0 or more");
        Options = options;
        _layers = options.Layers.Distinct().Order().ToArray();
    }

    /// <summary>Name on the command line.</summary>
    public abstract string Name { get; }

    public bool ReducesAt(int layer) => Array.IndexOf(_layers, layer) >= 0;

    /// <summary>Tokens the sentence has after block <paramref name="layer"/>: 2 + round((T₀ - 2) · keep^(i/k)) at the
    /// i-th of k reducing blocks, T₀ its length at the embedding layer; never more than it has now.</summary>
    public int Target(int layer, int originalLength, int length)
    {
        if (length <= 2) return length;
        int i = Array.IndexOf(_layers, layer) + 1;
        if (i == 0) return length;
        double frac = Math.Pow(Options.Keep, i / (double)_layers.Length);
        return Math.Min(length, 2 + (int)Math.Round((originalLength - 2) * frac));
    }

    public int[] Assign(SentenceTokens s)
    {
        int target = Target(s.Layer, s.OriginalLength, s.Length);
        if (target >= s.Length) return Enumerable.Range(0, s.Length).ToArray();
        var root = Reduce(s, s.Length - target);
        return Slots(root);
    }

    /// <summary>Removes <paramref name="remove"/> tokens: returns for each token the token it is merged into (itself
    /// when kept, -1 when dropped). Never called with a sentence of 2 tokens or fewer.</summary>
    protected abstract int[] Reduce(SentenceTokens s, int remove);

    /// <summary>Slots in order of each group's first token.</summary>
    public static int[] Slots(int[] root)
    {
        var slotOf = new Dictionary<int, int>();
        var a = new int[root.Length];
        for (int t = 0; t < root.Length; t++)
        {
            if (root[t] < 0) { a[t] = -1; continue; }
            if (!slotOf.TryGetValue(root[t], out int slot)) slotOf[root[t]] = slot = slotOf.Count;
            a[t] = slot;
        }
        return a;
    }

    /// <summary>Keeps [CLS], [SEP] and the tokens flagged in <paramref name="keep"/>, drops the rest.</summary>
    protected static int[] KeepOnly(bool[] keep)
    {
        var root = new int[keep.Length];
        for (int t = 0; t < keep.Length; t++) root[t] = keep[t] || t == 0 || t == keep.Length - 1 ? t : -1;
        return root;
    }

    /// <summary>Tokens other than [CLS] and [SEP].</summary>
    protected static int[] Inner(int length) => Enumerable.Range(1, length - 2).ToArray();

    /// <summary>Attention each token receives, averaged over queries (column means of the attention).</summary>
    protected static double[] Received(SentenceTokens s)
    {
        var r = new double[s.Length];
        for (int i = 0; i < s.Length; i++)
            for (int j = 0; j < s.Length; j++) r[j] += s.Attention[i * s.Length + j];
        for (int j = 0; j < s.Length; j++) r[j] /= s.Length;
        return r;
    }

    protected static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b) => SentencePooling.Cosine(a, b);
}

/// <summary>The reducers by their command-line names.</summary>
public static class TokenPruners
{
    public static readonly string[] Methods = ["zero-tprune", "tome", "fopru-rank", "fopru-row", "correlation"];

    public static TokenReducer Create(string method, TokenPruneOptions options) => method switch
    {
        "zero-tprune" => new ZeroTPrune(options),
        "tome" => new TokenMerging(options),
        "fopru-rank" => new FoPru(options, FoPruStrategy.Rank),
        "fopru-row" => new FoPru(options, FoPruStrategy.Row),
        "correlation" => new CorrelationGuided(options),
        _ => throw new PareException($"unknown token pruning method '{method}' (expected one of: {string.Join(", ", Methods)})"),
    };
}
