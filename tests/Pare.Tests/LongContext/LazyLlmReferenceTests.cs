using Pare.LongContext;
using Pare.Models;
using Pare.Models.Kv;
using Pare.Tensors;
using Pare.Tests.TestSupport;

namespace Pare.Tests.LongContext;

/// <summary>
/// LazyLLM's fast prefill (compacted kept tokens, aux cache, layer-by-layer revival) against its slow reference
/// (<see cref="LazyLlmReference"/>: one dense masked pass per layer, schedule derived independently): the same deferral
/// schedule, the same first-token logits, the same K/V at every layer and position after revival (deferred tokens resumed
/// from the right hidden state at their true RoPE positions), and the same logits for tokens decoded afterwards (which
/// attend to every prompt token at every layer).
/// </summary>
public class LazyLlmReferenceTests
{
    // 6 layers: the default schedule prunes at layers 2, 3 and 4 (round(0.25/0.5/0.75 x 6)), so tokens are deferred at
    // three depths and revived across several layers; GQA (8 query heads on 2 K/V heads).
    static string Model() => TestModels.Get("lazy6", TestModels.Cfg(dim: 64, layers: 6, heads: 8, kvHeads: 2, ffn: 128, tied: false), GgmlType.F32);

    static int[] Tokens(int n, int vocab, int seed)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => rng.Next(vocab))];
    }

    static double RelDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double diff = 0, scale = 1e-6;
        for (int i = 0; i < a.Length; i++) { diff = Math.Max(diff, Math.Abs(a[i] - b[i])); scale = Math.Max(scale, Math.Abs(a[i])); }
        return diff / scale;
    }

    [Theory]
    [InlineData(0.5, 0)]
    [InlineData(0.8, 1)]
    [InlineData(0.3, 2)]
    [InlineData(1.0, 3)]
    public void Prefill_revival_and_decoding_match_the_slow_reference(double keep, int seed) =>
        MatchesTheReference(new LazyLlmOptions { Keep = keep }, seed);

    // The documented variants: an observation window of the last W tokens, the maximum over heads, a per-layer schedule.
    [Theory]
    [InlineData(8, false, null, 4)]
    [InlineData(1, true, null, 5)]
    [InlineData(1, false, "0.9,0.6,0.3", 6)]
    [InlineData(16, true, "0.8,0.5,0.2", 7)]
    public void Window_max_over_heads_and_schedules_match_the_slow_reference(int window, bool maxOverHeads, string? keepAt, int seed) =>
        MatchesTheReference(new LazyLlmOptions { Keep = 0.5, Window = window, MaxOverHeads = maxOverHeads,
            KeepAt = keepAt == null ? null : [.. keepAt.Split(',').Select(x => double.Parse(x, System.Globalization.CultureInfo.InvariantCulture))] }, seed);

    // The variants for small models whose early layers' last token does not look at the needle: the maximum over the
    // observation window's queries, and max-pooling the importance over neighbours (alone, and with the others).
    [Theory]
    [InlineData(8, false, 1, 0.5, 8)]
    [InlineData(1, false, 5, 0.5, 9)]
    [InlineData(12, true, 5, 0.3, 10)]
    [InlineData(4, false, 3, 0.8, 11)]
    public void Max_over_the_window_and_pooling_match_the_slow_reference(int window, bool maxOverHeads, int pool, double keep, int seed) =>
        MatchesTheReference(new LazyLlmOptions { Keep = keep, Window = window, MaxOverWindow = window > 1, MaxOverHeads = maxOverHeads, Pool = pool }, seed);

    // Scoring a pruning layer by its own attention (its keys computed for every remaining token before the cut): alone, at
    // one layer and at the default three, with the window, the maxima and pooling, and a per-layer schedule.
    [Theory]
    [InlineData(1, false, 1, 0.5, null, 12)]
    [InlineData(1, false, 1, 0.3, "0.5", 13)]
    [InlineData(10, true, 5, 0.3, "0.5", 14)]
    [InlineData(4, true, 3, 0.6, null, 15)]
    public void Scoring_by_the_pruning_layers_own_attention_matches_the_slow_reference(int window, bool max, int pool, double keep, string? at, int seed) =>
        MatchesTheReference(new LazyLlmOptions { Keep = keep, Window = window, MaxOverWindow = max && window > 1, MaxOverHeads = max, Pool = pool, SameLayer = true,
            PruneAt = at == null ? [0.25, 0.5, 0.75] : [double.Parse(at, System.Globalization.CultureInfo.InvariantCulture)] }, seed);

    [Fact]
    public void Scoring_by_the_same_layer_defers_other_tokens_than_the_layer_below()
    {
        // The option is not a no-op: on random tokens the two importances pick different tokens to defer.
        using var m = LlamaModel.Load(Model());
        var prompt = Tokens(90, m.Config.VocabSize, 16);
        var s = m.CreateSession(new SessionOptions { Threads = 1 });
        var below = LazyLlm.Prefill(s, prompt, new LazyLlmOptions { Keep = 0.5, PruneAt = [0.5] }).DeferredAt.ToArray();
        var same = LazyLlm.Prefill(s, prompt, new LazyLlmOptions { Keep = 0.5, PruneAt = [0.5], SameLayer = true }).DeferredAt.ToArray();
        Assert.Equal(below.Count(d => d < m.Config.Layers), same.Count(d => d < m.Config.Layers));
        Assert.NotEqual(below, same);
    }

    static void MatchesTheReference(LazyLlmOptions options, int seed)
    {
        using var m = LlamaModel.Load(Model());
        var c = m.Config;
        var prompt = Tokens(90, c.VocabSize, 20 + seed);
        int[] decode = [5, 17];
        double keep = options.KeepAt?.Min() ?? options.Keep;
        var reference = LazyLlmReference.Run(m, prompt, options, decode);

        var s = m.CreateSession(new SessionOptions { Threads = 2 });
        var lp = LazyLlm.Prefill(s, prompt, options);
        Assert.Equal(reference.DeferredAt, lp.DeferredAt);
        Assert.All(reference.DeferredAt[^options.Window..], d => Assert.Equal(c.Layers, d));   // the window is never deferred
        Assert.Equal(keep < 1, lp.Deferred > 0);
        Assert.True(RelDiff(reference.FirstLogits, lp.Logits) <= 1e-4, $"first token: {RelDiff(reference.FirstLogits, lp.Logits):G3}");

        lp.Revive();
        Assert.Equal(0, lp.Deferred);
        for (int l = 0; l < c.Layers; l++)
        {
            int kvd = c.KvHeadsAt(l) * c.HeadDim;
            var (k, v) = s.Cache.Read(l, prompt.Length);
            var view = new KvView(k.Span, v.Span, s.ContextLength, c.HeadsAt(l), c.KvHeadsAt(l), c.HeadDim);
            var keys = new float[prompt.Length * kvd];
            for (int p = 0; p < prompt.Length; p++)
                for (int kh = 0; kh < c.KvHeadsAt(l); kh++)
                    for (int d = 0; d < c.HeadDim; d++) keys[p * kvd + kh * c.HeadDim + d] = view.Key(kh, p, d);
            Assert.True(RelDiff(reference.K[l].AsSpan(0, keys.Length), keys) <= 1e-4, $"layer {l} keys: {RelDiff(reference.K[l].AsSpan(0, keys.Length), keys):G3}");
            Assert.True(RelDiff(reference.V[l].AsSpan(0, keys.Length), v.Span[..keys.Length]) <= 1e-4, $"layer {l} values");
        }
        s.Forward(decode[..1]);
        var last = s.Forward(decode[1..]);
        Assert.True(RelDiff(reference.DecodedLogits!, last) <= 1e-4, $"decoded: {RelDiff(reference.DecodedLogits!, last):G3}");
    }

    [Fact]
    public void The_reference_at_keep_one_is_the_engines_full_prefill()
    {
        using var m = LlamaModel.Load(Model());
        var prompt = Tokens(70, m.Config.VocabSize, 4);
        var reference = LazyLlmReference.Run(m, prompt, new LazyLlmOptions { Keep = 1 }, [9]);
        var s = m.CreateSession(new SessionOptions { Threads = 2 });
        var full = s.Forward(prompt);
        Assert.All(reference.DeferredAt, d => Assert.Equal(m.Config.Layers, d));
        Assert.True(RelDiff(reference.FirstLogits, full) <= 1e-4, $"{RelDiff(reference.FirstLogits, full):G3}");
        Assert.True(RelDiff(reference.DecodedLogits!, s.Forward([9])) <= 1e-4);
    }

    [Fact]
    public void Deferring_every_token_at_the_last_layer_and_reviving_gives_the_full_cache_below_it()
    {
        // Pruning only at the top layer: every layer below is the full prefill's for every position.
        using var m = LlamaModel.Load(Model());
        var prompt = Tokens(64, m.Config.VocabSize, 6);
        var full = m.CreateSession(new SessionOptions { Threads = 2 });
        full.Forward(prompt);
        var s = m.CreateSession(new SessionOptions { Threads = 2 });
        var lp = LazyLlm.Prefill(s, prompt, new LazyLlmOptions { Keep = 0.01, PruneAt = [0.9] });
        Assert.Equal(prompt.Length - 1, lp.Deferred);
        lp.Revive();
        for (int l = 0; l < m.Config.Layers - 1; l++)
        {
            var a = full.Cache.Read(l, prompt.Length).K.ToArray();
            var b = s.Cache.Read(l, prompt.Length).K.ToArray();
            Assert.True(RelDiff(a, b) <= 1e-5, $"layer {l}: {RelDiff(a, b):G3}");
        }
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.0)]
    [InlineData(-0.5)]
    public void A_pruning_layer_outside_the_depth_is_one_clear_error(double at)
    {
        using var m = LlamaModel.Load(Model());
        var s = m.CreateSession(new SessionOptions { Threads = 1 });
        var e = Assert.Throws<PareException>(() => LazyLlm.Prefill(s, [1, 2, 3], new LazyLlmOptions { PruneAt = [at] }));
        Assert.Contains("(0, 1)", e.Message);
    }

    [Fact]
    public void A_schedule_with_the_wrong_number_of_shares_or_window_is_one_clear_error()
    {
        using var m = LlamaModel.Load(Model());
        var s = m.CreateSession(new SessionOptions { Threads = 1 });
        Assert.Contains("2 shares for 3 pruning layers", Assert.Throws<PareException>(() => LazyLlm.Prefill(s, [1, 2, 3], new LazyLlmOptions { KeepAt = [0.5, 0.5] })).Message);
        Assert.Contains("at least 1 token", Assert.Throws<PareException>(() => LazyLlm.Prefill(s, [1, 2, 3], new LazyLlmOptions { Window = 0 })).Message);
        Assert.Contains("odd number of tokens", Assert.Throws<PareException>(() => LazyLlm.Prefill(s, [1, 2, 3], new LazyLlmOptions { Pool = 2 })).Message);
        Assert.Contains("needs --lazy-window of at least 2", Assert.Throws<PareException>(() => LazyLlm.Prefill(s, [1, 2, 3], new LazyLlmOptions { MaxOverWindow = true })).Message);
    }
}
