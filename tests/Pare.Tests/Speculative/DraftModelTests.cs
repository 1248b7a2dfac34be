using Pare.Generation;
using Pare.Models;
using Pare.Speculative;
using Pare.Tensors;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Speculative;

/// <summary>Draft-model speculation (chain, fixed tree, DySpec, RASD, self-drafting): lossless greedy and sampled output.</summary>
public class DraftModelTests
{
    static readonly LlamaConfig Cfg = TestModels.OracleShapes[1].Config;
    static string Target() => TestModels.Get("spec", Cfg, GgmlType.F32);
    // Same shape and vocabulary, other weights: a draft model that often disagrees with the target.
    static string OtherDraft() => TestModels.Get("spec-draft", Cfg with { Layers = 2 }, GgmlType.F32, seed: 99);

    static int[] RepetitivePrompt(int seed)
    {
        var rng = new Random(seed);
        var phrase = Enumerable.Range(0, 6).Select(_ => rng.Next(300)).ToArray();
        return [.. phrase, .. phrase, .. phrase, .. Enumerable.Range(0, 4).Select(_ => rng.Next(300)), .. phrase[..3]];
    }

    static async Task<int[]> Plain(LlamaModel m, int[] prompt, GenerationOptions o)
    {
        var r = new List<int>();
        await foreach (var t in Generator.GenerateAsync(m.CreateSession(), prompt, o)) if (t.Id >= 0) r.Add(t.Id);
        return [.. r];
    }

    static async Task<(int[] Tokens, SpeculationStats Stats)> Spec(LlamaModel m, int[] prompt, GenerationOptions o, string drafter, int maxTree = 16)
    {
        var session = m.CreateSession();
        var d = Drafters.Create(drafter, session)!;
        try
        {
            var r = new List<int>();
            var stats = new SpeculationStats();
            var spec = new SpeculativeOptions { MaxTreeSize = maxTree, Adaptive = false };
            await foreach (var t in SpeculativeGenerator.GenerateAsync(session, prompt, o, d, spec, stats)) if (t.Id >= 0) r.Add(t.Id);
            return ([.. r], stats);
        }
        finally { (d as IModelDrafter)?.Runner.Dispose(); }
    }

    public static TheoryData<string> DrafterSpecs() => ["auto:SAME", "auto:OTHER", "model:SAME", "tree:SAME", "dyspec:SAME", "rasd:SAME", "model:OTHER", "tree:OTHER", "dyspec:OTHER", "rasd:OTHER", "self", "self:1"];

    static string Resolve(string spec) => spec.Replace("SAME", Target()).Replace("OTHER", OtherDraft());

    [Theory]
    [MemberData(nameof(DrafterSpecs))]
    public async Task Greedy_output_is_identical_to_plain_greedy(string spec)
    {
        using var m = LlamaModel.Load(Target());
        var o = new GenerationOptions { MaxTokens = 40, StopAtEos = false, Sampling = SamplingOptions.Greedy };
        foreach (int maxTree in new[] { 2, 7, 16 })
            for (int seed = 0; seed < 2; seed++)
            {
                var prompt = RepetitivePrompt(seed);
                var plain = await Plain(m, prompt, o);
                var (s, stats) = await Spec(m, prompt, o, Resolve(spec), maxTree);
                Assert.Equal(plain, s);
                // The target as its own draft model agrees with itself: every step accepts more than one token.
                if (spec.EndsWith("SAME", StringComparison.Ordinal) && !spec.StartsWith("auto", StringComparison.Ordinal) && maxTree > 2) Assert.True(stats.MeanAccepted > 1.5, $"{spec}: MAT {stats.MeanAccepted:F2}");
            }
    }

    [Fact]
    public void A_draft_with_another_vocabulary_or_bad_self_layers_is_one_clear_error()
    {
        using var m = LlamaModel.Load(Target());
        var other = TestModels.Get("spec-vocab", Cfg with { VocabSize = 300 }, GgmlType.F32);
        var s = m.CreateSession();
        Assert.Contains("vocabulary", Assert.Throws<PareException>(() => Drafters.Create("model:" + other, s)).Message);
        Assert.Contains("needs a draft model file", Assert.Throws<PareException>(() => Drafters.Create("dyspec:", s)).Message);
        Assert.Contains("not found", Assert.Throws<PareException>(() => Drafters.Create("rasd:/nonexistent.gguf", s)).Message);
        foreach (var bad in new[] { "self:0", "self:3", "self:x", "self:-1" })
            Assert.Contains("layers", Assert.Throws<PareException>(() => Drafters.Create(bad, s)).Message);
    }

    [Fact]
    public void Dyspec_grows_the_likeliest_paths_and_fixed_tree_follows_its_template()
    {
        using var m = LlamaModel.Load(Target());
        using var runner = new DraftModelRunner(m, 128, 1);
        var history = RepetitivePrompt(3);
        var tree = new DySpec(runner).Draft(history, 12);
        Assert.InRange(tree.Count, 2, 12);
        // Each node's draft path probability is at least that of every node added after it in the same parent.
        var fixedTree = new FixedDraftTree(runner).Draft(history, 12);
        Assert.Equal(12, fixedTree.Count);
        for (int i = 1; i < fixedTree.Count; i++) Assert.True(fixedTree.Parents[i] < i);
        // The draft cache is bounded by the context: layers x (K + V) x context x kv_dim floats.
        Assert.Equal((long)m.Config.Layers * 2 * 128 * m.Config.KvDim * sizeof(float), runner.KvCacheBytes);
        Assert.True(runner.ScratchBytes <= 12L * m.Config.VocabSize * sizeof(float) + 2L * m.Config.VocabSize * sizeof(float));
    }

    [Fact]
    public void Recursive_rejection_at_a_node_yields_the_target_distribution()
    {
        // p over 10 tokens; trials: two samples from q1, a deterministic proposal, one sample from q2. The token that
        // comes out must be distributed as p whatever the drafts (200,000 draws, total variation < 0.01).
        var rng = new Random(5);
        float[] Dist(int seed, int zeros)
        {
            var r = new Random(seed);
            var v = Enumerable.Range(0, 10).Select(i => i < zeros ? 0f : (float)r.NextDouble()).ToArray();
            float s = v.Sum();
            return [.. v.Select(x => x / s)];
        }
        var p = Dist(1, 0);
        var q1 = Dist(2, 3);
        var q2 = Dist(3, 0);
        var counts = new int[10];
        const int n = 200_000;
        var work = new float[10];
        var trials = new List<(int, float[]?)>();
        for (int k = 0; k < n; k++)
        {
            p.CopyTo(work, 0);
            trials.Clear();
            trials.Add((DraftDistribution.Draw(q1, rng), q1));
            trials.Add((DraftDistribution.Draw(q1, rng), q1));
            trials.Add((7, null));
            trials.Add((DraftDistribution.Draw(q2, rng), q2));
            counts[SpeculativeSampling.Verify(work, trials, rng).Token]++;
        }
        double tv = Enumerable.Range(0, 10).Sum(i => Math.Abs(counts[i] / (double)n - p[i])) / 2;
        Assert.True(tv < 0.01, $"total variation {tv:F4}");
        // The naive rule (accept a sampled draft whenever the target's own sample equals it... here: always accept the first
        // trial) is far from p: the check can fail.
        var naive = new int[10];
        for (int k = 0; k < n / 10; k++) naive[DraftDistribution.Draw(q1, rng)]++;
        Assert.True(Enumerable.Range(0, 10).Sum(i => Math.Abs(naive[i] / (n / 10.0) - p[i])) / 2 > 0.1);
    }

    [Theory]
    [InlineData("model:OTHER")]
    [InlineData("dyspec:OTHER")]
    [InlineData("rasd:SAME")]
    [InlineData("tree:OTHER")]
    [InlineData("auto:OTHER")]
    public async Task Sampled_output_has_the_distribution_of_plain_sampling(string spec)
    {
        // Over many seeds, the second and third generated tokens (the first ones speculation decides) and their pairs
        // are distributed as under plain sampling: total variation between the two empirical distributions within 2.5x
        // of what sampling noise alone gives for these counts.
        using var m = LlamaModel.Load(Target());
        var prompt = RepetitivePrompt(11);
        const int seeds = 1500;
        var plain = new List<int[]>();
        var spec2 = new List<int[]>();
        for (ulong seed = 0; seed < seeds; seed++)
        {
            var o = new GenerationOptions { MaxTokens = 3, StopAtEos = false, Sampling = new SamplingOptions { Temperature = 0.8f, TopK = 6, TopP = 1, MinP = 0, Seed = seed + 77 } };
            plain.Add(await Plain(m, prompt, o));
            spec2.Add((await Spec(m, prompt, o, Resolve(spec), maxTree: 8)).Tokens);
        }
        Check(plain.Select(t => t[1].ToString()), spec2.Select(t => t[1].ToString()), "second token");
        Check(plain.Select(t => t[2].ToString()), spec2.Select(t => t[2].ToString()), "third token");
        Check(plain.Select(t => $"{t[1]},{t[2]}"), spec2.Select(t => $"{t[1]},{t[2]}"), "pair");

        static void Check(IEnumerable<string> a, IEnumerable<string> b, string what)
        {
            var ca = a.GroupBy(x => x).ToDictionary(g => g.Key, g => g.Count());
            var cb = b.GroupBy(x => x).ToDictionary(g => g.Key, g => g.Count());
            int n = ca.Values.Sum();
            var keys = ca.Keys.Union(cb.Keys).ToList();
            double tv = keys.Sum(k => Math.Abs(ca.GetValueOrDefault(k) - cb.GetValueOrDefault(k))) / (2.0 * n);
            // Expected total variation between two samples of n from the pooled distribution: 0.5 sum sqrt(4 p (1-p) / (pi n)).
            double expected = keys.Sum(k => { double p = (ca.GetValueOrDefault(k) + cb.GetValueOrDefault(k)) / (2.0 * n); return Math.Sqrt(4 * p * (1 - p) / (Math.PI * n)); }) / 2;
            Assert.True(tv < 2.5 * expected + 0.005, $"{what}: total variation {tv:F4}, sampling noise alone about {expected:F4}");
        }
    }

    /// <summary>Counts the drafts of the drafter it wraps.</summary>
    sealed class Counted(IDrafter inner) : IDrafter
    {
        public int Drafts;
        public string Name => inner.Name;
        public void Start(IReadOnlyList<int> prompt, ReadOnlySpan<float> promptLogits, int vocab) => inner.Start(prompt, promptLogits, vocab);
        public DraftTree Draft(IReadOnlyList<int> history, int budget) { Drafts++; return inner.Draft(history, budget); }
        public void Update(IReadOnlyList<int> history, DraftTree tree, ReadOnlySpan<float> logits, int vocab) => inner.Update(history, tree, logits, vocab);
    }

    /// <summary>Drafts the given continuation (shifted by one when <paramref name="wrong"/>).</summary>
    sealed class Scripted(int[] truth, bool wrong, int vocab) : IDrafter
    {
        public string Name => wrong ? "wrong" : "right";
        public void Start(IReadOnlyList<int> prompt, ReadOnlySpan<float> promptLogits, int v) { }
        public void Update(IReadOnlyList<int> history, DraftTree tree, ReadOnlySpan<float> logits, int v) { }
        public DraftTree Draft(IReadOnlyList<int> history, int budget)
        {
            int from = history.Count - 1;
            var chain = truth.AsSpan(from, Math.Min(budget, truth.Length - from)).ToArray();
            if (wrong) for (int i = 1; i < chain.Length; i++) chain[i] = (chain[i] + 1) % vocab;
            return DraftTree.Chain(chain);
        }
    }

    [Fact]
    public void A_draft_session_caught_up_late_gives_the_logits_of_one_advanced_every_step_or_of_its_window()
    {
        // auto:FILE does not advance the draft session while drafter-free arms draft; a model arm syncs it when it drafts.
        using var model = LlamaModel.Load(OtherDraft());
        var rng = new Random(5);
        var text = Enumerable.Range(0, 200).Select(_ => rng.Next(Cfg.VocabSize)).ToArray();
        using var every = new DraftModelRunner(model, 256, 1);
        using var lazy = new DraftModelRunner(model, 256, 1) { CatchUpWindow = 32 };
        using var fresh = new DraftModelRunner(model, 256, 1);
        for (int n = 2; n <= text.Length; n++)
        {
            var a = every.Sync(text[..n]).ToArray();
            if (n % 9 != 0) continue;
            // Lagging by less than the window (9 tokens): one batched catch-up, the logits of a session advanced every step.
            var b = lazy.Sync(text[..n]).ToArray();
            Assert.True(MaxDiff(a, b) < 1e-3f, $"at {n}: max |diff| {MaxDiff(a, b)}");
        }
        // A long pause: 150 tokens behind, the session starts afresh on the last 32 tokens before the pending one.
        lazy.Reset();
        lazy.Sync(text[..20]);
        var late = lazy.Sync(text[..170]).ToArray();
        fresh.Reset();
        Assert.Equal(fresh.Sync(text[(170 - 1 - 32)..170]).ToArray(), late);
        Assert.True(MaxDiff(late, every.Sync(text[..170]).ToArray()) > 0, "a 32-token window is another context");

        static float MaxDiff(float[] x, float[] y) => x.Zip(y, (p, q) => Math.Abs(p - q)).Max();
    }

    [Fact]
    public void A_prepared_draft_session_starts_empty_and_gives_the_logits_of_a_fresh_one()
    {
        // Prepare (bench-spec: the draft model's one-time set-up at load) runs passes of its own and must leave nothing behind.
        using var model = LlamaModel.Load(OtherDraft());
        var rng = new Random(6);
        var text = Enumerable.Range(0, 40).Select(_ => rng.Next(Cfg.VocabSize)).ToArray();
        using var prepared = new DraftModelRunner(model, 128, 1);
        using var fresh = new DraftModelRunner(model, 128, 1);
        prepared.Sync(text[..10]);
        prepared.Prepare();
        Assert.Equal(fresh.Sync(text).ToArray(), prepared.Sync(text).ToArray());
    }

    [Fact]
    public async Task Auto_with_a_draft_model_is_lossless_and_drafts_mostly_with_the_fastest_arm()
    {
        using var m = LlamaModel.Load(Target());
        var o = new GenerationOptions { MaxTokens = 120, StopAtEos = false, Sampling = SamplingOptions.Greedy };
        var prompt = RepetitivePrompt(3);
        var plain = await Plain(m, prompt, o);
        int[] truth = [.. prompt, .. plain];
        var session = m.CreateSession();
        using var runner = new DraftModelRunner(LlamaModel.Load(OtherDraft()), session.ContextLength, 1, ownsModel: true);
        // Every clock read is one tick (a plain step measures 2); costs are flat, so only the measured rates choose.
        double now = 0;
        var spec = new SpeculativeOptions { MaxTreeSize = 8, Costs = new CostModel([1, 2, 4, 8], [1.0, 1.0, 1.0, 1.0]), Clock = () => now++, EvidenceNgram = 0 };
        var wrong = new Counted(new Scripted(truth, true, Cfg.VocabSize));
        var model = new Counted(new DySpec(runner));
        var right = new Counted(new Scripted(truth, false, Cfg.VocabSize));
        var choice = new DrafterChoice("auto:test", runner, wrong, model, right);
        var output = new List<int>();
        var stats = new SpeculationStats();
        await foreach (var t in SpeculativeGenerator.GenerateAsync(session, prompt, o, choice, spec, stats)) if (t.Id >= 0) output.Add(t.Id);

        Assert.Equal(plain, output);
        // Every arm was measured, and the one whose drafts are all accepted drafted most steps.
        Assert.True(wrong.Drafts >= 1 && model.Drafts >= 1, $"wrong {wrong.Drafts}, model {model.Drafts}");
        Assert.True(right.Drafts > 2 * (wrong.Drafts + model.Drafts), $"right {right.Drafts}, wrong {wrong.Drafts}, model {model.Drafts}");
        Assert.True(stats.MeanAccepted > 3, $"MAT {stats.MeanAccepted:F2}, steps {stats.Steps}, plain {stats.PlainSteps}, right {right.Drafts}, wrong {wrong.Drafts}, model {model.Drafts}, nodes {stats.NodesEvaluated}");
    }
}
