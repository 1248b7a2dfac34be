using Pare.LongContext.KvPolicies;
using Pare.Models;
using Pare.Models.Kv;
using Pare.Speculative;
using Pare.Tensors;
using Pare.Tests.TestSupport;

namespace Pare.Tests.LongContext;

public class KvPolicyTests
{
    static string Model() => TestModels.Get("spec", TestModels.OracleShapes[1].Config, GgmlType.F32);

    public static TheoryData<string> Policies() => [.. KvPolicy.Names];

    static int[] Tokens(int n, int vocab, int seed)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => rng.Next(vocab))];
    }

    [Theory]
    [MemberData(nameof(Policies))]
    public void A_budget_of_the_whole_context_gives_the_full_cache_logits_bitwise(string name)
    {
        using var m = LlamaModel.Load(Model());
        int v = m.Config.VocabSize, ctx = 200;
        var prompt = Tokens(150, v, 1);
        var full = m.CreateSession(new SessionOptions { Threads = 2, ContextLength = ctx });
        var pol = m.CreateSession(new SessionOptions { Threads = 2, ContextLength = ctx, KvPolicy = KvPolicy.Create(name, ctx, m.Config, ctx) });
        Assert.Equal(full.Forward(prompt), pol.Forward(prompt));
        var rng = new Random(2);
        for (int i = 0; i < 40; i++)
        {
            int t = rng.Next(v);
            Assert.Equal(full.Forward([t]), pol.Forward([t]));
        }
    }

    /// <summary>A policy that selects every position explicitly: the selected-positions kernel against the dense one.</summary>
    sealed class Everything(int heads) : IKvPolicy
    {
        public string Name => "everything";
        public int Budget => 1;
        public int LocalWindow => int.MaxValue;
        public int[][]? Select(int layer, int slot, ReadOnlySpan<float> query, int queryPosition, int prefix, in KvView kv) =>
            KvPolicy.Shared(heads, KvPolicy.Range(0, queryPosition));
        public void OnAppend(int layer, ReadOnlySpan<float> queries, int n, int pos0, in KvView kv) { }
        public void OnRewind(int position) { }
    }

    [Fact]
    public void Selecting_every_position_matches_the_dense_kernel()
    {
        using var m = LlamaModel.Load(Model());
        int v = m.Config.VocabSize;
        var prompt = Tokens(90, v, 3);
        var full = m.CreateSession(new SessionOptions { Threads = 2 });
        var sel = m.CreateSession(new SessionOptions { Threads = 2, KvPolicy = new Everything(m.Config.Heads) });
        full.Forward(prompt[..60]); sel.Forward(prompt[..60]);
        var a = full.ForwardAll(prompt[60..]);
        var b = sel.ForwardAll(prompt[60..]);
        double maxAbs = a.Max(Math.Abs), maxDiff = a.Zip(b, (x, y) => Math.Abs(x - y)).Max();
        Assert.True(maxDiff <= 1e-5 * maxAbs, $"{maxDiff:G3} of {maxAbs:G3}");
    }

    [Theory]
    [MemberData(nameof(Policies))]
    public void A_small_budget_changes_the_logits_but_tree_verification_matches_plain_decoding(string name)
    {
        using var m = LlamaModel.Load(Model());
        int v = m.Config.VocabSize, ctx = 256, budget = 64;
        var prefix = Tokens(150, v, 4);
        var rng = new Random(5);
        var tree = new DraftTree(rng.Next(v));
        while (tree.Count < 20) tree.Add(rng.Next(v), rng.Next(tree.Count));
        Assert.True(tree.Depths.Max() < 16);
        var s = m.CreateSession(new SessionOptions { Threads = 2, ContextLength = ctx, KvPolicy = KvPolicy.Create(name, budget, m.Config, ctx) });
        s.Forward(prefix);
        var logits = s.ForwardTree(tree);
        bool anyDiffers = false;
        for (int node = 0; node < tree.Count; node++)
        {
            var path = new List<int>();
            for (int n = node; n >= 0; n = tree.Parents[n]) path.Insert(0, tree.Tokens[n]);
            var plain = m.CreateSession(new SessionOptions { Threads = 2, ContextLength = ctx, KvPolicy = KvPolicy.Create(name, budget, m.Config, ctx) });
            plain.Forward(prefix);
            float[] expected = [];
            foreach (int t in path) expected = plain.Forward([t]);     // decode steps: the policy acts on each
            var actual = logits.AsSpan(node * v, v).ToArray();
            double maxAbs = expected.Max(Math.Abs), maxDiff = expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(maxDiff <= 1e-5 * maxAbs, $"{name} node {node} (depth {tree.Depths[node]}): {maxDiff:G3}");
            if (name != "full")
            {
                var dense = m.CreateSession(new SessionOptions { Threads = 2, ContextLength = ctx });
                dense.Forward(prefix);
                float[] d = [];
                foreach (int t in path) d = dense.Forward([t]);
                anyDiffers |= d.Zip(expected, (a, b) => Math.Abs(a - b)).Max() > 1e-4 * maxAbs;
            }
        }
        Assert.True(name == "full" || anyDiffers, $"{name} at budget {budget} of 150 positions should change some logits");
    }

    [Fact]
    public void Tokenselect_int8_scores_keep_the_planted_keys_and_most_of_the_exact_selection()
    {
        var cfg = TestModels.Cfg(dim: 256, layers: 1, heads: 8, kvHeads: 2, ffn: 64, tied: true);   // head width 32
        int hd = cfg.HeadDim, kvd = cfg.KvHeads * hd, positions = 3000, capacity = 3001, budget = 256;
        var rng = new Random(11);
        var q = Enumerable.Range(0, cfg.Heads * hd).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var k = Enumerable.Range(0, positions * kvd).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        int[] planted = [100, 777, 1500, 2222];
        foreach (int p in planted)   // keys along the group's summed query: every head of the group votes for them
            for (int h = 0; h < cfg.KvHeads; h++)
                for (int d = 0; d < hd; d++)
                    k[p * kvd + h * hd + d] = 4 * Enumerable.Range(0, cfg.Heads / cfg.KvHeads).Sum(j => q[(h * cfg.Heads / cfg.KvHeads + j) * hd + d]);
        var kBlocks = new float[Pare.Kernels.BlockedAttention.CacheFloats(capacity, cfg.KvHeads, hd)];
        Pare.Kernels.BlockedAttention.WriteK(k, positions, cfg.KvHeads, hd, kBlocks, capacity, 0);
        var view = new KvView(kBlocks, new float[capacity * kvd], capacity, cfg.Heads, cfg.KvHeads, hd, threads: 2);
        var fast = new TokenSelectPolicy(new TokenSelectOptions { Budget = budget }, cfg);
        var exact = new TokenSelectPolicy(new TokenSelectOptions { Budget = budget, Int8Scores = false, KeyRows = false }, cfg);
        var a = fast.Select(0, 0, q, positions, positions, view)![0];
        var b = exact.Select(0, 0, q, positions, positions, view)![0];
        Assert.Equal(budget, a.Length);
        Assert.All(planted, p => { Assert.Contains(p, a); Assert.Contains(p, b); });
        Assert.True(a.Intersect(b).Count() >= 0.9 * budget, $"{a.Intersect(b).Count()} of {budget} shared");
        // The rows are the cache's keys, position-major; the exact path keeps none.
        Assert.Equal(k, fast.KeyRows(0)[..(positions * kvd)].ToArray());
        Assert.True(exact.KeyRows(0).IsEmpty);
    }

    [Fact]
    public void Tokenselect_selection_cache_reuses_the_selection_for_a_similar_query_only()
    {
        var cfg = TestModels.Cfg(dim: 256, layers: 1, heads: 8, kvHeads: 2, ffn: 64, tied: true);   // head width 32
        int hd = cfg.HeadDim, kvd = cfg.KvHeads * hd, positions = 1000, capacity = 1010;
        var rng = new Random(3);
        float[] Random(int n) => [.. Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1))];
        var k = Random(positions * kvd);
        var kBlocks = new float[Pare.Kernels.BlockedAttention.CacheFloats(capacity, cfg.KvHeads, hd)];
        Pare.Kernels.BlockedAttention.WriteK(k, positions, cfg.KvHeads, hd, kBlocks, capacity, 0);
        var view = new KvView(kBlocks, new float[capacity * kvd], capacity, cfg.Heads, cfg.KvHeads, hd, threads: 2);
        var q = Random(cfg.Heads * hd);
        var other = Random(cfg.Heads * hd);   // made orthogonal to q: cosine 0
        float along = q.Zip(other, (a, b) => a * b).Sum() / q.Sum(a => a * a);
        for (int i = 0; i < other.Length; i++) other[i] -= along * q[i];

        var policy = (TokenSelectPolicy)KvPolicy.Create("tokenselect", 256, cfg, capacity, selectionCache: 0.9);   // n_init 32, n_local 64, top_k 160
        int init = 32, local = 64, topK = 160, p1 = 990, p2 = 993;
        var first = policy.Select(0, 0, q, p1, p1, view)![0];
        var second = policy.Select(0, 0, q, p2, p2, view)![0];
        Assert.Equal((2L, 1L, 0.5), (policy.Selections, policy.CacheHits, policy.CacheHitRate!.Value));
        // The cached top-k plus the positions that left the local window since (p1 - local .. p2 - local), the oldest dropped.
        int[] top = first[init..(init + topK)];
        int[] expected = [.. Enumerable.Range(0, init), .. top.Concat(Enumerable.Range(p1 - local, p2 - p1)).TakeLast(topK), .. Enumerable.Range(p2 - local, local)];
        Assert.Equal(expected, second);
        Assert.Equal(first.Length, second.Length);

        var third = policy.Select(0, 0, other, p2, p2, view)![0];   // orthogonal: selected afresh
        Assert.Equal((3L, 1L), (policy.Selections, policy.CacheHits));
        var fresh = new TokenSelectPolicy(new TokenSelectOptions { Budget = 256 }, cfg);
        Assert.Equal(fresh.Select(0, 0, other, p2, p2, view)![0], third);
        Assert.Null(fresh.CacheHitRate);   // cache off: counted, no rate
        Assert.Equal(1L, fresh.Selections);

        Assert.Contains("applies to tokenselect only", Assert.Throws<PareException>(() => KvPolicy.Create("quest", 10, cfg, 100, selectionCache: 0.9)).Message);
        Assert.Contains("must be a cosine threshold in (0, 1]", Assert.Throws<PareException>(() => KvPolicy.Create("tokenselect", 10, cfg, 100, selectionCache: 1.5)).Message);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Tokenselect_key_rows_change_nothing_but_the_kernel(bool renumber)
    {
        // Head width 64: the rows kernel's vector path (RowsAttention), the renumbered gather from the rows too.
        var cfg = TestModels.Cfg(dim: 256, layers: 2, heads: 4, kvHeads: 2, ffn: 128, tied: true);
        using var m = LlamaModel.Load(TestModels.Get("ts-rows", cfg, GgmlType.F32));
        int v = m.Config.VocabSize, ctx = 256;
        var prompt = Tokens(200, v, 7);
        float[] Decode(bool rows)
        {
            var policy = new TokenSelectPolicy(new TokenSelectOptions { Budget = 64, Renumber = renumber, KeyRows = rows }, m.Config);
            var s = m.CreateSession(new SessionOptions { Threads = 2, ContextLength = ctx, KvPolicy = policy });
            s.Forward(prompt[..150]);
            s.Forward(prompt[150..180]);   // a chunk: its own positions and the committed prefix
            float[] last = [];
            foreach (int t in prompt[180..]) last = s.Forward([t]);
            return last;
        }
        var a = Decode(true);
        var b = Decode(false);
        double maxAbs = b.Max(Math.Abs), maxDiff = a.Zip(b, (x, y) => Math.Abs(x - y)).Max();
        Assert.True(maxDiff <= 1e-5 * maxAbs, $"rows vs blocks: {maxDiff:G3} of {maxAbs:G3}");
    }

    [Fact]
    public void Top_k_by_selection_equals_a_stable_sort()
    {
        var rng = new Random(5);
        foreach (int n in new[] { 1, 7, 64, 1000, 15000 })   // 15000: TokenSelect's 1,408 of 15.7k at 16k
            foreach (bool ties in new[] { false, true })
            {
                var scores = Enumerable.Range(0, n).Select(_ => ties ? rng.Next(6) : (float)rng.NextDouble()).Select(x => (float)x).ToArray();
                foreach (int k in new[] { 0, 1, n / 11, n / 3, n - 1, n, n + 2 })
                {
                    int[] expected = [.. Enumerable.Range(0, n).OrderByDescending(i => scores[i]).ThenBy(i => i).Take(Math.Max(0, k)).Order()];
                    Assert.Equal(expected, Pare.LongContext.KvPolicies.KvPolicy.TopK(scores, k));
                }
            }
    }

    [Fact]
    public void Bad_input_is_one_line()
    {
        using var m = LlamaModel.Load(Model());
        Assert.Contains("unknown KV policy", Assert.Throws<PareException>(() => KvPolicy.Create("lru", 10, m.Config, 100)).Message);
        Assert.Contains("at least 1", Assert.Throws<PareException>(() => KvPolicy.Create("h2o", 0, m.Config, 100)).Message);
        Assert.Contains("larger than the context", Assert.Throws<PareException>(() => KvPolicy.Create("quest", 101, m.Config, 100)).Message);
        Assert.Contains("needs --kv-budget", Assert.Throws<PareException>(() => KvPolicy.Create("snapkv", null, m.Config, 100)).Message);
    }
}

public class LazyLlmTests
{
    static string Model() => TestModels.Get("spec", TestModels.OracleShapes[1].Config, GgmlType.F32);

    static int[] Tokens(int n, int vocab, int seed)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => rng.Next(vocab))];
    }

    static double RelDiff(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max() / a.Max(Math.Abs);

    [Fact]
    public void Keep_one_is_the_full_prefill()
    {
        using var m = LlamaModel.Load(Model());
        var prompt = Tokens(120, m.Config.VocabSize, 7);
        var full = m.CreateSession(new SessionOptions { Threads = 2 }).Forward(prompt);
        var s = m.CreateSession(new SessionOptions { Threads = 2 });
        var lp = Pare.LongContext.LazyLlm.Prefill(s, prompt, new Pare.LongContext.LazyLlmOptions { Keep = 1.0 });
        Assert.Equal(0, lp.Deferred);
        Assert.True(RelDiff(full, lp.Logits) <= 1e-6, $"{RelDiff(full, lp.Logits):G3}");
        Assert.Equal(prompt.Length, s.Position);
    }

    [Fact]
    public void Pruning_changes_the_first_token_and_revival_completes_the_cache_below_the_first_pruning_layer_exactly()
    {
        using var m = LlamaModel.Load(Model());
        int v = m.Config.VocabSize;
        var prompt = Tokens(120, v, 8);
        var fullS = m.CreateSession(new SessionOptions { Threads = 2 });
        var full = fullS.Forward(prompt);
        var s = m.CreateSession(new SessionOptions { Threads = 2 });
        var lp = Pare.LongContext.LazyLlm.Prefill(s, prompt, new Pare.LongContext.LazyLlmOptions { Keep = 0.3, PruneAt = [0.34, 0.67] });
        Assert.True(lp.Deferred > 0);
        Assert.True(lp.KeptAtLastLayer < prompt.Length / 2, $"{lp.KeptAtLastLayer} kept");
        Assert.True(RelDiff(full, lp.Logits) > 1e-4, "pruning should change the logits");
        lp.Revive();
        Assert.Equal(0, lp.Deferred);
        // Layer 0 runs before any pruning: its cache is the full prefill's. Layers above are complete (decoding reads them).
        var (ka, va) = fullS.Cache.Read(0, prompt.Length);
        var kaArr = ka.ToArray(); var vaArr = va.ToArray();
        var (kb, vb) = s.Cache.Read(0, prompt.Length);
        Assert.True(kaArr.Zip(kb.ToArray(), (x, y) => Math.Abs(x - y)).Max() <= 1e-5);
        int t = 5;
        var next = s.Forward([t]);
        Assert.True(next.All(float.IsFinite));
        // The last layer's cache has no hole left: every prompt position has a non-zero key.
        var (kl, _) = s.Cache.Read(m.Config.Layers - 1, prompt.Length + 1);
        var view = new Pare.Models.Kv.KvView(kl.Span, default, s.ContextLength, m.Config.Heads, m.Config.KvHeads, m.Config.HeadDim);
        for (int p = 0; p < prompt.Length; p++)
        {
            float norm = 0;
            for (int d = 0; d < m.Config.HeadDim; d++) norm += Math.Abs(view.Key(0, p, d));
            Assert.True(norm > 0, $"position {p} has no key at the last layer");
        }
    }
}
