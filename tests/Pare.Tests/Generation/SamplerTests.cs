using Pare.Generation;
using Pare.Models;
using Pare.Tensors;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Generation;

public class SamplerTests
{
    static float[] Logits() => [2f, 1f, 0.5f, 0f, -1f, -3f, 4f, 3.5f];

    [Fact]
    public void Greedy_picks_argmax_and_penalty_changes_it()
    {
        Assert.Equal(6, new Sampler(SamplingOptions.Greedy).Sample(Logits(), []));
        // Token 6 seen recently: 4 / 2 = 2 < 3.5, so 7 wins.
        var s = new Sampler(new SamplingOptions { Temperature = 0, RepetitionPenalty = 2f });
        Assert.Equal(7, s.Sample(Logits(), [6]));
    }

    [Fact]
    public void Banned_tokens_are_never_chosen()
    {
        var s = new Sampler(new SamplingOptions { Temperature = 0, BannedTokens = [6, 7] });
        Assert.Equal(0, s.Sample(Logits(), []));
        var r = new Sampler(new SamplingOptions { Temperature = 2, TopK = 0, TopP = 1, MinP = 0, Seed = 5, BannedTokens = [6] });
        Assert.DoesNotContain(6, Enumerable.Range(0, 3000).Select(_ => r.Sample(Logits(), [])));
    }

    [Fact]
    public void Top_k_keeps_only_k_tokens()
    {
        var s = new Sampler(new SamplingOptions { Temperature = 1, TopK = 2, TopP = 1, MinP = 0, Seed = 3 });
        var seen = Enumerable.Range(0, 2000).Select(_ => s.Sample(Logits(), [])).ToHashSet();
        Assert.Equal(new HashSet<int> { 6, 7 }, seen);
    }

    [Fact]
    public void Top_p_and_min_p_cut_the_tail()
    {
        var (tokens, probs, count) = new Sampler(new SamplingOptions { Temperature = 1, TopK = 0, TopP = 0.5f, MinP = 0 }).Probabilities(Logits());
        Assert.Equal(1, count); // p(6) = 0.51 alone reaches 0.5
        Assert.Equal(6, tokens[0]);
        Assert.Equal(1f, probs[0], 5);
        var (t2, _, c2) = new Sampler(new SamplingOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0.3f }).Probabilities(Logits());
        // min-p 0.3 of p(6): keeps logits >= 4 + ln 0.3 = 2.80 -> tokens 6 and 7.
        Assert.Equal(2, c2);
        Assert.Equal(new[] { 6, 7 }, t2[..2]);
    }

    [Fact]
    public void Sampling_follows_the_softmax_and_the_seed()
    {
        var o = new SamplingOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0, Seed = 42 };
        var logits = Logits();
        var counts = new int[logits.Length];
        var s = new Sampler(o);
        const int n = 40000;
        for (int i = 0; i < n; i++) counts[s.Sample((float[])logits.Clone(), [])]++;
        double z = logits.Sum(l => Math.Exp(l));
        for (int i = 0; i < logits.Length; i++)
        {
            double p = Math.Exp(logits[i]) / z;
            Assert.True(Math.Abs(counts[i] / (double)n - p) < 4 * Math.Sqrt(p * (1 - p) / n) + 1e-3, $"token {i}: {counts[i] / (double)n:F4} vs {p:F4}");
        }
        var a = new Sampler(o); var b = new Sampler(o);
        Assert.Equal(Enumerable.Range(0, 50).Select(_ => a.Sample(Logits(), [])), Enumerable.Range(0, 50).Select(_ => b.Sample(Logits(), [])));
    }

    [Theory]
    [InlineData(0f, 40, 1.5f, 0f, 1f)]
    [InlineData(1f, -1, 0.9f, 0f, 1f)]
    [InlineData(1f, 40, 0.9f, 1f, 1f)]
    [InlineData(1f, 40, 0.9f, 0f, 0f)]
    public void Bad_options_are_rejected(float temp, int topK, float topP, float minP, float penalty) =>
        Assert.Throws<PareException>(() => new Sampler(new SamplingOptions { Temperature = temp, TopK = topK, TopP = topP, MinP = minP, RepetitionPenalty = penalty }));
}

public class GeneratorTests
{
    static string Model() => TestModels.Get("gen", TestModels.OracleShapes[0].Config, GgmlType.F32);

    static async Task<List<GeneratedToken>> Generate(LlamaModel m, string prompt, GenerationOptions o, CancellationToken ct = default)
    {
        var list = new List<GeneratedToken>();
        await foreach (var t in Generator.GenerateAsync(m.CreateSession(), m.Tokenizer!.Encode(prompt), o, ct)) list.Add(t);
        return list;
    }

    [Fact]
    public async Task Same_seed_same_text_and_max_tokens_holds()
    {
        using var m = LlamaModel.Load(Model());
        var o = new GenerationOptions { MaxTokens = 20, StopAtEos = false, Sampling = new SamplingOptions { Seed = 9 } };
        var a = await Generate(m, "abc", o);
        var b = await Generate(m, "abc", o);
        Assert.Equal(a.Select(t => t.Id), b.Select(t => t.Id));
        Assert.Equal(20, a.Count(t => t.Id >= 0));
        var c = await Generate(m, "abc", o with { Sampling = new SamplingOptions { Seed = 10 } });
        Assert.NotEqual(a.Select(t => t.Id), c.Select(t => t.Id));
    }

    [Fact]
    public async Task Stop_sequence_ends_output_before_it()
    {
        using var m = LlamaModel.Load(Model());
        var o = new GenerationOptions { MaxTokens = 40, StopAtEos = false, Sampling = SamplingOptions.Greedy };
        string full = string.Concat((await Generate(m, "abc", o)).Select(t => t.Text));
        Assert.True(full.Length >= 6, full);
        string stop = full.Substring(3, 2);
        int at = full.IndexOf(stop, StringComparison.Ordinal);
        string cut = string.Concat((await Generate(m, "abc", o with { StopSequences = [stop] })).Select(t => t.Text));
        Assert.Equal(full[..at], cut);
    }

    [Fact]
    public async Task Cancellation_stops_the_stream()
    {
        using var m = LlamaModel.Load(Model());
        using var cts = new CancellationTokenSource();
        int n = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var t in Generator.GenerateAsync(m.CreateSession(), m.Tokenizer!.Encode("abc"), new GenerationOptions { MaxTokens = 100, StopAtEos = false }, cts.Token))
                if (++n == 3) cts.Cancel();
        });
        Assert.Equal(3, n);
    }
}

public class FastSamplerTests
{
    /// <summary>Random logits shaped like a model's: a few strong tokens over a wide tail, with ties, -inf and NaN sometimes.</summary>
    static float[] RandomLogits(Random rng, int n, bool specials)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 6 - 3);
        for (int i = 0; i < 1 + n / 500; i++) x[rng.Next(n)] = (float)(rng.NextDouble() * 8 + 4);
        if (specials)
        {
            // Exact ties among the strongest, banned (-inf) entries, a NaN, and both zeros.
            float top = x.Max();
            x[rng.Next(n)] = top; x[rng.Next(n)] = top;
            x[rng.Next(n)] = float.NegativeInfinity;
            x[rng.Next(n)] = float.NaN;
            x[rng.Next(n)] = 0f; x[rng.Next(n)] = -0f;
        }
        return x;
    }

    public static TheoryData<float, int, float, float> Options() => new()
    {
        { 0.8f, 40, 0.95f, 0.05f },   // the defaults
        { 1.0f, 1, 1f, 0f },
        { 1.3f, 5, 0.5f, 0f },
        { 0.7f, 0, 0.9f, 0f },       // top-k off: top-p over the whole vocabulary
        { 1.0f, 0, 1f, 0.02f },      // min-p alone
        { 2.0f, 0, 1f, 0f },         // plain temperature sampling
        { 1.0f, 100000, 0.99f, 0f }, // k above the vocabulary
        { 0f, 40, 0.95f, 0.05f },    // greedy
    };

    [Theory]
    [MemberData(nameof(Options))]
    public void Fast_sampler_picks_the_reference_token_for_the_same_draw(float temp, int topK, float topP, float minP)
    {
        var o = new SamplingOptions { Temperature = temp, TopK = topK, TopP = topP, MinP = minP };
        var fast = new Sampler(o);
        var rng = new Random(17);
        foreach (int n in new[] { 1, 7, 16, 63, 1000, 8192, 32000 })
            for (int trial = 0; trial < 30; trial++)
            {
                var x = RandomLogits(rng, n, specials: trial % 3 == 0 && n > 8);
                double r = rng.NextDouble();
                int want = ReferenceSampler.Choose(x, o, r);
                Assert.Equal(want, fast.Choose(x, r));
                // The whole distribution agrees too, not just the drawn token.
                var (rt, rp) = ReferenceSampler.Distribution(x, o);
                if (temp > 0)
                {
                    var (ft, fp, count) = fast.Probabilities(x);
                    Assert.Equal(rt, ft[..count]);
                    Assert.Equal(rp, fp[..count]);
                }
            }
    }

    [Fact]
    public void Sample_uses_the_same_random_stream_as_the_reference()
    {
        var o = new SamplingOptions { Seed = 123, RepetitionPenalty = 1.3f, BannedTokens = [5] };
        var fast = new Sampler(o);
        var refRng = new Random(123);
        var rng = new Random(4);
        var history = new List<int>();
        for (int step = 0; step < 300; step++)
        {
            var x = RandomLogits(rng, 512, specials: false);
            int want = ReferenceSampler.Sample((float[])x.Clone(), history, o, refRng);
            Assert.Equal(want, fast.Sample(x, history));
            Assert.NotEqual(5, want);
            history.Add(want);
        }
    }

    [Fact]
    public void ArgMax_is_the_first_largest_and_skips_NaN()
    {
        var rng = new Random(3);
        foreach (int n in new[] { 1, 5, 16, 17, 100, 4099 })
        {
            var x = RandomLogits(rng, n, specials: false);
            int want = 0;
            for (int i = 1; i < n; i++) if (x[i] > x[want]) want = i;
            Assert.Equal(want, Sampler.ArgMax(x));
            x[n - 1] = x[want]; // a later tie does not move it
            Assert.Equal(want, Sampler.ArgMax(x));
        }
        Assert.Equal(2, Sampler.ArgMax([float.NaN, 1f, 3f, float.NaN, 3f]));
        Assert.Equal(0, Sampler.ArgMax([float.NaN, float.NaN]));
        var big = new float[40]; big[0] = float.NaN; big[33] = 2f;
        Assert.Equal(33, Sampler.ArgMax(big));
    }

    [Fact]
    public void Sampling_allocates_nothing_after_the_first_token()
    {
        var o = new SamplingOptions { Seed = 1 };
        var s = new Sampler(o);
        var x = RandomLogits(new Random(1), 128_000, specials: false);
        var history = new List<int> { 1, 2, 3 };
        s.Sample((float[])x.Clone(), history);
        var copy = (float[])x.Clone();
        // A per-token allocation shows in every round; the runtime's own occasional bytes (seen under parallel test
        // load, e.g. while methods tier up) do not, so the quietest of five rounds must be zero.
        long least = long.MaxValue;
        for (int round = 0; round < 5; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 20; i++) { x.CopyTo(copy, 0); s.Sample(copy, history); }
            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        Assert.Equal(0, least);
    }
}
