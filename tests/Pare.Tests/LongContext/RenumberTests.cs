using Pare.LongContext;
using Pare.LongContext.KvPolicies;
using Pare.Models;
using Pare.Models.Kv;
using Pare.Tensors;
using Pare.Tests.TestSupport;

namespace Pare.Tests.LongContext;

/// <summary>
/// TokenSelect's RoPE over the gathered sequence (<see cref="IKvPolicy.Renumber"/>): the engine re-rotates the cached
/// (post-RoPE) keys it gathers; the slow reference (<see cref="RenumberedDecodeReference"/>) keeps keys pre-RoPE and rotates
/// them at their rank in the selection, the query at the selection's size. Same selections, same logits.
/// </summary>
public class RenumberTests
{
    // GQA (8 query heads on 2 K/V heads), interleaved RoPE as the reference models.
    static string Model() => TestModels.Get("lazy6", TestModels.Cfg(dim: 64, layers: 6, heads: 8, kvHeads: 2, ffn: 128, tied: false), GgmlType.F32);

    /// <summary>Passes every call to TokenSelect and keeps, per layer, the positions the last decode step selected.</summary>
    sealed class Recording(IKvPolicy inner, int layers) : IKvPolicy
    {
        public readonly int[]?[] Last = new int[]?[layers];
        public string Name => inner.Name;
        public int Budget => inner.Budget;
        public int LocalWindow => inner.LocalWindow;
        public bool Renumber => inner.Renumber;
        public int[][]? Select(int layer, int slot, ReadOnlySpan<float> query, int queryPosition, int prefix, in KvView kv)
        {
            var r = inner.Select(layer, slot, query, queryPosition, prefix, kv);
            Last[layer] = r?[0].Where(p => p < prefix).ToArray();
            return r;
        }
        public void OnAppend(int layer, ReadOnlySpan<float> queries, int n, int pos0, in KvView kv) => inner.OnAppend(layer, queries, n, pos0, kv);
        public void OnRewind(int position) => inner.OnRewind(position);
        public ReadOnlySpan<float> KeyRows(int layer) => inner.KeyRows(layer);
    }

    static double RelDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double diff = 0, scale = 1e-6;
        for (int i = 0; i < a.Length; i++) { diff = Math.Max(diff, Math.Abs(a[i] - b[i])); scale = Math.Max(scale, Math.Abs(a[i])); }
        return diff / scale;
    }

    static (float[] Logits, int[]?[] Selections) Decode(LlamaModel m, int[] prompt, int budget, bool renumber)
    {
        var policy = new Recording(KvPolicy.Create("tokenselect", budget, m.Config, prompt.Length, renumber), m.Config.Layers);
        var s = m.CreateSession(new SessionOptions { Threads = 2, ContextLength = prompt.Length, KvPolicy = policy });
        s.Forward(prompt[..^1]);
        return (s.Forward(prompt[^1..]), policy.Last);
    }

    [Theory]
    [InlineData(24, 0)]
    [InlineData(40, 1)]
    public void Renumbered_decoding_matches_the_pre_rope_reference(int budget, int seed)
    {
        using var m = LlamaModel.Load(Model());
        var rng = new Random(seed);
        int[] prompt = [.. Enumerable.Range(0, 90).Select(_ => rng.Next(m.Config.VocabSize))];
        var (fast, sel) = Decode(m, prompt, budget, renumber: true);
        // The selections leave gaps (otherwise renumbering would change nothing), the budget's worth of positions each.
        Assert.All(sel, s => { Assert.NotNull(s); Assert.Equal(budget, s!.Length); Assert.NotEqual(prompt.Length - 1 - budget, s[0]); });
        var reference = RenumberedDecodeReference.Run(m, prompt, sel);
        Assert.True(RelDiff(reference, fast) < 1e-4, $"renumbered engine vs reference: {RelDiff(reference, fast):E2}");
        // The test discriminates: keys at their true positions give other logits (the same selection at layer 0, where the
        // query is the same; above it the hidden states differ, and so may the selections).
        var (plain, plainSel) = Decode(m, prompt, budget, renumber: false);
        Assert.Equal(sel[0], plainSel[0]);
        Assert.True(RelDiff(reference, plain) > 1e-3, $"true positions vs reference: {RelDiff(reference, plain):E2}");
    }

    [Fact]
    public void Renumbering_a_selection_of_every_position_is_the_full_cache()
    {
        using var m = LlamaModel.Load(Model());
        var rng = new Random(5);
        int[] prompt = [.. Enumerable.Range(0, 60).Select(_ => rng.Next(m.Config.VocabSize))];
        var reference = RenumberedDecodeReference.Run(m, prompt, new int[]?[m.Config.Layers]);
        var full = m.CreateSession(new SessionOptions { Threads = 2, ContextLength = 60 }).Forward(prompt);
        Assert.True(RelDiff(reference, full) < 1e-4, $"reference with every position vs full cache: {RelDiff(reference, full):E2}");
    }

    [Fact]
    public void Only_tokenselect_renumbers()
    {
        using var m = LlamaModel.Load(Model());
        Assert.Contains("applies to tokenselect only", Assert.Throws<PareException>(() => KvPolicy.Create("quest", 10, m.Config, 100, renumber: true)).Message);
        Assert.True(KvPolicy.Create("tokenselect", 10, m.Config, 100).Renumber);
        Assert.False(KvPolicy.Create("tokenselect", 10, m.Config, 100, renumber: false).Renumber);
        Assert.False(KvPolicy.Create("streaming", 10, m.Config, 100).Renumber);
    }
}
