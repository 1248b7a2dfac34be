using Pare.Generation;
using Pare.Models;
using Pare.Speculative;
using Pare.Tensors;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Speculative;

/// <summary>Speculative output equals plain decoding: token for token in greedy mode, and per seed when sampling.</summary>
public class LosslessTests
{
    static string Model() => TestModels.Get("spec", TestModels.OracleShapes[1].Config, GgmlType.F32);

    static async Task<int[]> Plain(LlamaModel m, int[] prompt, GenerationOptions o)
    {
        var r = new List<int>();
        await foreach (var t in Generator.GenerateAsync(m.CreateSession(), prompt, o)) if (t.Id >= 0) r.Add(t.Id);
        return [.. r];
    }

    static async Task<(int[] Tokens, SpeculationStats Stats)> Spec(LlamaModel m, int[] prompt, GenerationOptions o, string drafter, int maxTree = 16)
    {
        var r = new List<int>();
        var stats = new SpeculationStats();
        var spec = new SpeculativeOptions { MaxTreeSize = maxTree, Adaptive = false };
        await foreach (var t in SpeculativeGenerator.GenerateAsync(m.CreateSession(), prompt, o, Drafters.Create(drafter)!, spec, stats))
            if (t.Id >= 0) r.Add(t.Id);
        return ([.. r], stats);
    }

    static int[] RepetitivePrompt(int seed)
    {
        var rng = new Random(seed);
        var phrase = Enumerable.Range(0, 6).Select(_ => rng.Next(300)).ToArray();
        return [.. phrase, .. phrase, .. phrase, .. Enumerable.Range(0, 4).Select(_ => rng.Next(300)), .. phrase[..3]];
    }

    [Fact]
    public async Task Preparing_the_speculative_path_compiles_the_generator_and_changes_no_output()
    {
        // Concurrently, as `pare run` does (on another thread while the model loads), and more than once.
        Parallel.Invoke(SpeculativeGenerator.Prepare, SpeculativeGenerator.Prepare, Pare.Cli.Commands.CostCache.Prepare);
        // The generator's state machine (3 KB of IL) is compiled now: starting a generation compiles at most small methods here.
        var gen = SpeculativeGenerator.GenerateAsync(null!, [], new GenerationOptions(), null!, new SpeculativeOptions(), new SpeculationStats());
        long il = System.Runtime.JitInfo.GetCompiledILBytes(currentThread: true);
        var first = gen.GetAsyncEnumerator().MoveNextAsync();
        long compiled = System.Runtime.JitInfo.GetCompiledILBytes(currentThread: true) - il;
        Assert.True(compiled < 1000, $"{compiled} bytes of IL compiled");
        await Assert.ThrowsAsync<PareException>(async () => await first);

        using var m = LlamaModel.Load(Model());
        var o = new GenerationOptions { MaxTokens = 24, StopAtEos = false, Sampling = SamplingOptions.Greedy };
        var prompt = RepetitivePrompt(3);
        Assert.Equal(await Plain(m, prompt, o), (await Spec(m, prompt, o, "auto")).Tokens);
    }

    [Theory]
    [InlineData("pld")]
    [InlineData("recycle")]
    [InlineData("auto")]
    public async Task Fills_the_context_exactly_as_plain_decoding(string drafter)
    {
        // A 40-position cache and more tokens asked for than fit: both stop when the cache is full, after the same tokens.
        using var m = LlamaModel.Load(Model());
        var o = new GenerationOptions { MaxTokens = 100, StopAtEos = false, Sampling = SamplingOptions.Greedy };
        var prompt = RepetitivePrompt(7);
        var plain = new List<int>();
        await foreach (var t in Generator.GenerateAsync(m.CreateSession(new SessionOptions { ContextLength = 40 }), prompt, o)) if (t.Id >= 0) plain.Add(t.Id);
        Assert.Equal(40 - prompt.Length + 1, plain.Count);
        foreach (int maxTree in new[] { 2, 5, 16 })
        {
            var spec = new List<int>();
            var so = new SpeculativeOptions { MaxTreeSize = maxTree, Adaptive = false };
            await foreach (var t in SpeculativeGenerator.GenerateAsync(m.CreateSession(new SessionOptions { ContextLength = 40 }), prompt, o, Drafters.Create(drafter)!, so, new SpeculationStats()))
                if (t.Id >= 0) spec.Add(t.Id);
            Assert.Equal(plain, spec);
        }
    }

    [Theory]
    [InlineData("pld")]
    [InlineData("recycle")]
    [InlineData("lookahead")]
    [InlineData("aded")]
    [InlineData("auto")]
    public async Task Greedy_output_is_identical_to_plain_greedy(string drafter)
    {
        using var m = LlamaModel.Load(Model());
        var o = new GenerationOptions { MaxTokens = 48, StopAtEos = false, Sampling = SamplingOptions.Greedy };
        for (int seed = 0; seed < 3; seed++)
        {
            var prompt = RepetitivePrompt(seed);
            var plain = await Plain(m, prompt, o);
            var (spec, stats) = await Spec(m, prompt, o, drafter);
            Assert.Equal(plain, spec);
            Assert.Equal(48, spec.Length);
            Assert.True(stats.MeanAccepted >= 1.0);
            Assert.True(stats.Steps < 48 || drafter is "aded" or "lookahead", $"{drafter}: {stats.Steps} steps for 48 tokens");
        }
    }

    [Theory]
    [InlineData("recycle")]
    [InlineData("auto")]
    public async Task Sampled_output_equals_plain_sampling_for_each_seed(string drafter)
    {
        using var m = LlamaModel.Load(Model());
        var prompt = RepetitivePrompt(7);
        for (ulong seed = 0; seed < 10; seed++)
        {
            var o = new GenerationOptions { MaxTokens = 24, StopAtEos = false, Sampling = new SamplingOptions { Temperature = 0.9f, TopK = 20, TopP = 0.95f, Seed = seed } };
            Assert.Equal(await Plain(m, prompt, o), (await Spec(m, prompt, o, drafter)).Tokens);
        }
    }

    [Fact]
    public async Task Next_token_frequencies_match_plain_sampling()
    {
        // Statistical check on the second generated token (the first one speculation can change), over many seeds.
        using var m = LlamaModel.Load(Model());
        var prompt = RepetitivePrompt(11);
        const int seeds = 300;
        var plainCounts = new Dictionary<int, int>();
        var specCounts = new Dictionary<int, int>();
        for (ulong seed = 0; seed < seeds; seed++)
        {
            var o = new GenerationOptions { MaxTokens = 2, StopAtEos = false, Sampling = new SamplingOptions { Temperature = 1.5f, TopK = 0, TopP = 1, MinP = 0, Seed = seed + 1000 } };
            var p = await Plain(m, prompt, o);
            var s = (await Spec(m, prompt, o, "recycle", maxTree: 8)).Tokens;
            plainCounts[p[1]] = plainCounts.GetValueOrDefault(p[1]) + 1;
            specCounts[s[1]] = specCounts.GetValueOrDefault(s[1]) + 1;
        }
        // Total variation distance between the two empirical distributions stays small.
        double tv = plainCounts.Keys.Union(specCounts.Keys).Sum(k => Math.Abs(plainCounts.GetValueOrDefault(k) - specCounts.GetValueOrDefault(k))) / (2.0 * seeds);
        Assert.True(tv < 0.05, $"total variation {tv:F3}");
    }
}
