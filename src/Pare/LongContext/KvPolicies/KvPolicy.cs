using Pare.Models;
using Pare.Models.Kv;

namespace Pare.LongContext.KvPolicies;

/// <summary>The KV policies by name (<c>--kv-policy</c>), each built with its options record's reference defaults.</summary>
public static class KvPolicy
{
    /// <summary>Names accepted by <see cref="Create"/>.</summary>
    public static readonly string[] Names = ["full", "streaming", "h2o", "snapkv", "quest", "tokenselect", "actqkv"];

    /// <summary>
    /// A fresh policy for one session of a model with <paramref name="config"/> whose cache holds <paramref name="context"/>
    /// positions. Throws a one-line <see cref="PareException"/> for an unknown name, a budget under 1, or a budget beyond the
    /// context (a budget equal to the context keeps everything: the full cache). <paramref name="renumber"/>: TokenSelect's
    /// RoPE over the gathered sequence (<see cref="TokenSelectOptions.Renumber"/>, default on); the other policies keep true
    /// positions, and asking them to renumber is an error. <paramref name="scores"/>: TokenSelect's selection scores, int4 (default),
    /// int8 or f32 (<see cref="TokenSelectOptions.Int8Scores"/>, <see cref="TokenSelectOptions.SketchBits"/>); any value for
    /// another policy is an error. <paramref name="selectionCache"/>: TokenSelect's selection cache with this cosine threshold in
    /// (0, 1] (<see cref="TokenSelectOptions.SelectionCache"/>; null = off, the default); any value for another policy is an error.
    /// </summary>
    public static IKvPolicy Create(string name, int? budget, LlamaConfig config, int context, bool? renumber = null, string? scores = null,
        double? selectionCache = null)
    {
        string n = name.ToLowerInvariant();
        if (Array.IndexOf(Names, n) < 0) throw new PareException($"unknown KV policy '{name}' (one of {string.Join(", ", Names)})");
        if (renumber == true && n != "tokenselect") throw new PareException($"--kv-renumber on applies to tokenselect only (got --kv-policy {n})");
        if (scores != null && n != "tokenselect") throw new PareException($"--kv-scores applies to tokenselect only (got --kv-policy {n})");
        if (scores is not (null or "int8" or "int4" or "f32")) throw new PareException($"--kv-scores must be int8, int4 or f32 (got {scores})");
        if (selectionCache != null && n != "tokenselect") throw new PareException($"--kv-selection-cache applies to tokenselect only (got --kv-policy {n})");
        if (selectionCache is double th && !(th > 0 && th <= 1))
            throw new PareException($"--kv-selection-cache must be a cosine threshold in (0, 1] or off (got {th.ToString(System.Globalization.CultureInfo.InvariantCulture)})");
        if (n == "full")
        {
            if (budget is int fb && (fb < 1 || fb > context)) CheckBudget(fb, context);
            return new FullPolicy();
        }
        if (budget is not int b) throw new PareException($"--kv-policy {n} needs --kv-budget N (positions each head attends to)");
        CheckBudget(b, context);
        return n switch
        {
            "streaming" => new StreamingPolicy(new StreamingOptions { Budget = b }),
            "h2o" => new H2oPolicy(new H2oOptions { Budget = b }, config),
            "snapkv" => new SnapKvPolicy(new SnapKvOptions { Budget = b }, config),
            "quest" => new QuestPolicy(new QuestOptions { Budget = b }, config),
            "tokenselect" => new TokenSelectPolicy(new TokenSelectOptions { Budget = b, Renumber = renumber ?? true, Int8Scores = scores != "f32", SketchBits = scores == "int8" ? 8 : 4,
                SelectionCache = selectionCache != null, CacheThreshold = selectionCache ?? 0.9 }, config),
            _ => new ActQkvPolicy(new ActQkvOptions { Budget = b }, config),
        };
    }

    static void CheckBudget(int b, int context)
    {
        if (b < 1) throw new PareException($"--kv-budget must be at least 1 (got {b})");
        if (b > context) throw new PareException($"--kv-budget {b} is larger than the context of {context} tokens");
    }

    /// <summary>Positions [from, to) as an array.</summary>
    internal static int[] Range(int from, int to) => to <= from ? [] : [.. Enumerable.Range(from, to - from)];

    /// <summary>The same selection for every head.</summary>
    internal static int[][] Shared(int heads, int[] positions)
    {
        var r = new int[heads][];
        Array.Fill(r, positions);
        return r;
    }

    /// <summary>Indices of the k largest scores (ties: lower index first), ascending. O(n): the k-th largest value is
    /// found by bisection, then one vectorized pass keeps everything above it and the first ties (<see cref="Kernels.TopK.Indices"/>).</summary>
    internal static int[] TopK(ReadOnlySpan<float> scores, int k)
    {
        if (k >= scores.Length) return Range(0, scores.Length);
        if (k <= 0) return [];
        var top = new int[k];
        Kernels.TopK.Indices(scores, k, top);
        return top;
    }

    /// <summary>Sorted union of ascending position lists.</summary>
    internal static int[] Union(params int[][] lists) => [.. lists.SelectMany(x => x).Distinct().Order()];
}

/// <summary>Shape of the model a policy serves.</summary>
internal readonly record struct Shape(int Layers, int Heads, int KvHeads, int HeadDim)
{
    public static Shape Of(LlamaConfig c) => new(c.Layers, c.Heads, c.KvHeads, c.HeadDim);
    public int Group => Heads / KvHeads;
}
