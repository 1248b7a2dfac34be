using Pare.Speculative;

namespace Pare.Tests.Speculative;

public class DrafterTests
{
    [Fact]
    public void Prompt_lookup_proposes_what_followed_the_last_ngram()
    {
        var d = new PromptLookup();
        int[] h = [5, 6, 7, 8, 9, 1, 2, 5, 6, 7];
        var t = d.Draft(h, 4);
        Assert.Equal(new[] { 7, 8, 9, 1 }, t.Tokens);
        Assert.Equal(1, new PromptLookup().Draft([1, 2, 3], 8).Count); // no earlier occurrence: root only
    }

    [Theory]
    [InlineData(1, 128)]
    [InlineData(2, 128)]
    [InlineData(3, 128)]
    [InlineData(5, 128)]
    [InlineData(3, 1)]      // the smallest table: grows many times over 300 tokens
    [InlineData(3, 5000)]   // sized up front (as the generator sizes its evidence index): never grows
    public void Ngram_index_finds_what_the_backward_scan_finds(int n, int capacity)
    {
        var rng = new Random(n);
        var index = new NgramIndex(n, capacity);
        // The same sequences through a read-only view (not a List or an array: the copying path).
        var viewed = new NgramIndex(n, capacity);
        for (int trial = 0; trial < 20; trial++)
        {
            // One growing sequence per trial (appended 1-3 tokens at a time), a small alphabet so that n-grams repeat.
            var seq = new List<int>();
            var view = seq.AsReadOnly();
            int alphabet = 2 + trial % 5;
            while (seq.Count < 300)
            {
                int add = 1 + rng.Next(3);
                for (int i = 0; i < add; i++) seq.Add(trial % 2 == 0 ? rng.Next(alphabet) : 100_000 + rng.Next(alphabet));
                int expected = PromptLookup.Scan(seq, n, n);
                Assert.Equal(expected, index.Latest(seq));
                Assert.Equal(expected, viewed.Latest(view));
            }
        }
        // Another sequence (a fresh array each call) is indexed afresh.
        Assert.Equal(PromptLookup.Scan(new[] { 1, 2, 1, 2 }, n, n), index.Latest(new[] { 1, 2, 1, 2 }));
    }

    [Fact]
    public void Prompt_lookup_drafts_the_longest_latest_match_as_the_scan_does()
    {
        var rng = new Random(5);
        var d = new PromptLookup(maxNgram: 3, minNgram: 2);
        var seq = new List<int>();
        for (int step = 0; step < 400; step++)
        {
            seq.Add(rng.Next(4));
            int from = PromptLookup.Scan(seq, 3, 2);
            var t = d.Draft(seq, 6);
            int[] expect = from < 0 ? [seq[^1]] : [seq[^1], .. seq.Skip(from).Take(5)];
            Assert.Equal(expect, t.Tokens);
        }
    }

    [Fact]
    public void Token_recycling_fills_the_template_from_the_adjacency_matrix()
    {
        var d = new TokenRecycling();
        const int v = 50;
        var logits = new float[2 * v];
        for (int i = 0; i < v; i++) { logits[i] = -i; logits[v + i] = i; } // after token 3: 0,1,2..; after 4: 49,48,...
        d.Start([3, 4], logits, v);
        Assert.Equal((long)v * TokenRecycling.K * sizeof(int), d.MatrixBytes);
        var t = d.Draft([9, 3], 200);
        Assert.Equal(3, t.Tokens[0]);
        var rootChildren = Enumerable.Range(1, t.Count - 1).Where(i => t.Parents[i] == 0).Select(i => t.Tokens[i]).Order();
        Assert.Equal(new[] { 0, 1, 2, 3, 4, 5, 6, 7 }, rootChildren);
        Assert.Equal(80, TokenRecycling.Template.Length);
        Assert.True(t.Depths.Max() >= 2); // the template reaches below the first level (token 3's row lists 3 again)
        // Parents always come before children.
        for (int i = 0; i < TokenRecycling.Template.Length; i++) Assert.True(TokenRecycling.Template[i].Parent <= i);
    }

    [Fact]
    public void A_lookahead_trie_inserting_each_token_from_the_last_ones_nodes_is_the_trie_that_walks_every_ngram_from_the_root()
    {
        // The incremental insertion (each n-gram ending at a token extends the node of the one ending before it) against
        // the walk from the root, the reference: through decays (a small node budget), new sequences (Start, and a
        // catch-up on a shorter history), catch-ups of several tokens at once and of one.
        var rng = new Random(15);
        foreach (var (branch, budget) in new[] { (6, 400), (12, 3000), (1, 50), (3, 100_000) })
        {
            var fast = new LookaheadTrie(branch, budget);
            var slow = new LookaheadTrie(branch, budget) { Reference = true };
            int drafts = 0;
            for (int sequence = 0; sequence < 4; sequence++)
            {
                var phrase = Enumerable.Range(0, 5 + rng.Next(8)).Select(_ => rng.Next(40)).ToArray();
                var h = new List<int>(phrase);
                fast.Start(h, [], 40); slow.Start(h, [], 40);
                for (int step = 0; step < 600; step++)
                {
                    for (int k = 1 + (rng.Next(4) == 0 ? rng.Next(9) : 0); k > 0; k--) h.Add(rng.Next(5) == 0 ? rng.Next(40) : phrase[(h.Count + k) % phrase.Length]);
                    if (rng.Next(3) == 0) { fast.CatchUp(h, h.Count - 1); slow.CatchUp(h, h.Count - 1); }
                    else { fast.Update(h, new DraftTree(h[^1]), [], 40); slow.Update(h, new DraftTree(h[^1]), [], 40); }
                    Assert.Equal(slow.NodeCount, fast.NodeCount);
                    var a = slow.Draft(h, 16);
                    var b = fast.Draft(h, 16);
                    Assert.Equal(a.Tokens, b.Tokens);
                    Assert.Equal(a.Parents, b.Parents);
                    drafts += a.Count > 1 ? 1 : 0;
                }
                // A catch-up on a shorter history is a new sequence.
                var restart = phrase.Take(3).ToList();
                fast.CatchUp(restart, restart.Count); slow.CatchUp(restart, restart.Count);
                Assert.Equal(slow.NodeCount, fast.NodeCount);
            }
            // (Unigrams alone have no continuation to draft.)
            Assert.True(branch == 1 || drafts > 1000, $"{drafts} non-empty drafts compared (branch {branch})");
        }
    }

    [Fact]
    public void A_lookahead_trie_caught_up_on_the_text_drafts_as_one_updated_every_step()
    {
        // auto:FILE skips the updates of text-learning arms it does not draft with (IHistoryLearner) and catches them up
        // before they draft: the Lookahead trie then drafts exactly what a trie updated at every step drafts.
        var every = new LookaheadTrie(branchLength: 6, nodeBudget: 3000);
        var lazy = new LookaheadTrie(branchLength: 6, nodeBudget: 3000);
        var rng = new Random(3);
        var phrase = Enumerable.Range(0, 9).Select(_ => rng.Next(50)).ToArray();
        var h = new List<int>(phrase);
        every.Start(h, [], 50); lazy.Start(h, [], 50);
        int compared = 0;
        for (int step = 0; step < 3000; step++)
        {
            // The pending token joins, the arm due may draft (caught up on the text before it), then the step's tokens are accepted.
            h.Add(rng.Next(4) == 0 ? rng.Next(50) : phrase[step % phrase.Length]);
            if (step % 7 == 0)
            {
                lazy.CatchUp(h, h.Count - 1);
                var a = every.Draft(h, 12);
                var b = lazy.Draft(h, 12);
                Assert.Equal(a.Tokens, b.Tokens);
                Assert.Equal(a.Parents, b.Parents);
                compared += a.Count > 1 ? 1 : 0;
            }
            for (int k = rng.Next(3); k > 0; k--) h.Add(phrase[(step + k) % phrase.Length]);
            every.Update(h, new DraftTree(h[^1]), [], 50);
        }
        Assert.True(compared > 300, $"{compared} non-empty drafts compared");
        // Both decayed past their budget (at the same tokens: decay is checked per token): the same trie.
        lazy.CatchUp(h, h.Count);
        Assert.Equal(every.NodeCount, lazy.NodeCount);
    }

    [Fact]
    public void Lookahead_trie_retrieves_frequent_branches_and_stays_bounded()
    {
        var d = new LookaheadTrie(branchLength: 12, nodeBudget: 5000);
        int[] prompt = [1, 2, 3, 4, 1, 2, 3, 5, 1, 2, 3, 4];
        d.Start(prompt, [], 10);
        var t = d.Draft([7, 1, 2], 6);
        Assert.Equal(3, t.Tokens[1]); // after "1 2" always came 3
        Assert.Contains(4, t.Tokens); // then 4 (twice) or 5 (once)
        // 20k generated tokens of varied text: the node count never exceeds the budget.
        var rng = new Random(1);
        var h = new List<int>(prompt);
        for (int i = 0; i < 20000; i++)
        {
            h.Add(rng.Next(200));
            if (i % 4 == 0) d.Update(h, new DraftTree(h[^1]), [], 200);
            Assert.True(d.NodeCount <= 5000, $"{d.NodeCount} nodes after {i} tokens");
        }
        Assert.True(d.Draft(h, 16).Count >= 1);
    }

    [Fact]
    public void Aded_learns_trigrams_from_verified_output()
    {
        var d = new Aded();
        d.Start([1, 2, 3, 1, 2, 3, 1, 2], [], 10);
        var t = d.Draft([1, 2], 4);
        Assert.Equal(3, t.Tokens[1]);
        Assert.Equal(1, t.Tokens[2]);
    }

    [Fact]
    public void Token_recycling_rows_are_the_top_k_of_the_logits()
    {
        // A vocabulary that is not a multiple of 16 (the scan skips 16 logits at a time), random logits with ties.
        const int v = 8192 + 5;
        var rng = new Random(3);
        for (int trial = 0; trial < 5; trial++)
        {
            var logits = Enumerable.Range(0, v).Select(_ => (float)Math.Round(rng.NextDouble() * 300) / 10).ToArray();
            var d = new TokenRecycling();
            d.Start([11], logits, v);
            var t = d.Draft([11], 1 + TokenRecycling.Template.Length);
            // The root's children come in the template's order of its parent-0 entries; sort them back into rank order.
            var ranks = TokenRecycling.Template.Where(e => e.Parent == 0).Select(e => e.Rank).ToArray();
            var children = Enumerable.Range(1, t.Count - 1).Where(i => t.Parents[i] == 0).Select(i => t.Tokens[i]).ToArray();
            var byRank = children.Zip(ranks).OrderBy(x => x.Second).Select(x => x.First).ToArray();
            // Reference: a stable sort by logit, descending (ties keep the lower token id first, as the scan does).
            var expected = Enumerable.Range(0, v).OrderByDescending(i => logits[i]).Take(TokenRecycling.K).ToArray();
            Assert.Equal(expected, byRank);
        }
    }

    [Fact]
    public void Token_recycling_top_k_inserts_only_the_logits_that_beat_the_kth_best_and_matches_the_scalar_scan()
    {
        // The vector scan inserts only the lanes of a block that beat the k-th best as of the block's start; the scalar
        // scan offers every logit. Orders that make every block insert (ascending), ties at the k-th place, NaN and
        // infinities, fewer than K finite logits, lengths around 16.
        var rng = new Random(15);
        List<float[]> cases =
        [
            [.. Enumerable.Range(0, 4096).Select(i => (float)i)],
            [.. Enumerable.Range(0, 4096).Select(i => (float)(i % 37))],
            [.. Enumerable.Range(0, 8197).Select(_ => (float)Math.Round(rng.NextDouble() * 40) / 4)],
            [.. Enumerable.Range(0, 33).Select(i => i % 5 == 0 ? float.NaN : i % 7 == 0 ? float.PositiveInfinity : -i)],
            [.. Enumerable.Range(0, 40).Select(i => i < 3 ? (float)i : float.NegativeInfinity)],
            [1, 2, 3],
            [.. Enumerable.Range(0, 16).Select(_ => (float)rng.NextDouble())],
            [.. Enumerable.Range(0, 17).Select(_ => (float)rng.NextDouble())],
        ];
        for (int trial = 0; trial < 20; trial++) cases.Add([.. Enumerable.Range(0, 8192).Select(_ => (float)(rng.NextDouble() * 6 + Math.Log(rng.NextDouble() + 1e-9)))]);
        foreach (var logits in cases)
        {
            var fast = new int[TokenRecycling.K];
            var slow = new int[TokenRecycling.K];
            TokenRecycling.TopK(logits, fast);
            TokenRecycling.TopKScalar(logits, slow);
            Assert.Equal(slow, fast);
        }
    }

    [Fact]
    public void Composite_merges_shared_prefixes()
    {
        var d = new CompositeDrafter("t", new PromptLookup(), new PromptLookup());
        var t = d.Draft([5, 6, 7, 8, 5, 6], 10);
        Assert.Equal(new[] { 6, 7, 8, 5, 6 }, t.Tokens);
    }

    [Fact]
    public void Composite_share_bounds_what_the_first_part_drafts()
    {
        int[] history = [1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2];
        // Second part: a fixed chain under the root (never a prompt-lookup token), to see where the first part stopped.
        var filler = new CompositeDrafter("f", new FixedChain([40, 41, 42, 43, 44, 45]));
        // Half share: prompt lookup gets 1 + 5 / 2 = 3 nodes (root + 2 tokens), the filler the rest.
        var half = new CompositeDrafter("half", 0.5, new PromptLookup(minNgram: 2), filler).Draft(history, 6);
        Assert.Equal(new[] { 2, 3, 4, 40, 41, 42 }, half.Tokens);
        // Whole share (`auto`): prompt lookup's chain takes the whole budget.
        var whole = new CompositeDrafter("whole", 1.0, new PromptLookup(minNgram: 2), filler).Draft(history, 6);
        Assert.Equal(new[] { 2, 3, 4, 5, 6, 7 }, whole.Tokens);
        // No match: the filler gets everything.
        var none = new CompositeDrafter("none", 1.0, new PromptLookup(minNgram: 2), filler).Draft([1, 2, 3, 4], 4);
        Assert.Equal(new[] { 4, 40, 41, 42 }, none.Tokens);
    }

    [Fact]
    public void An_unfilled_composite_drafts_only_its_first_parts_where_they_match_and_says_where_they_end()
    {
        int[] history = [1, 2, 3, 4, 5, 1, 2];
        var filler = new CompositeDrafter("f", new FixedChain([40, 41, 42, 43, 44, 45]));
        var d = new CompositeDrafter("auto-like", 1.0, new PromptLookup(minNgram: 2), filler);
        // Filled (the default): prompt lookup's chain (3, 4, 5, 1, 2: up to the end of the text), then the filler.
        Assert.Equal(new[] { 2, 3, 4, 5, 1, 2, 40, 41 }, d.Draft(history, 8).Tokens);
        Assert.Equal(6, d.Lead);
        // Unfilled: the chain alone; the filler still drafts where prompt lookup has no match.
        d.Fill = false;
        Assert.Equal(new[] { 2, 3, 4, 5, 1, 2 }, d.Draft(history, 8).Tokens);
        Assert.Equal(6, d.Lead);
        Assert.Equal(new[] { 4, 40, 41, 42 }, d.Draft([1, 2, 3, 4], 4).Tokens);
        Assert.Equal(1, d.Lead);
        // A budget the chain uses up: the whole tree is the lead.
        Assert.Equal(new[] { 2, 3, 4 }, d.Draft(history, 3).Tokens);
        Assert.Equal(3, d.Lead);
    }

    /// <summary>Drafts a fixed chain under the root.</summary>
    sealed class FixedChain(int[] chain) : IDrafter
    {
        public string Name => "fixed";
        public void Start(IReadOnlyList<int> prompt, ReadOnlySpan<float> promptLogits, int vocab) { }
        public void Update(IReadOnlyList<int> history, DraftTree tree, ReadOnlySpan<float> logits, int vocab) { }
        public DraftTree Draft(IReadOnlyList<int> history, int budget) =>
            DraftTree.Chain([history[^1], .. chain.AsSpan(0, Math.Min(chain.Length, budget - 1))]);
    }

    [Fact]
    public void Cached_costs_are_read_back_and_a_bad_file_is_measured_again()
    {
        var c = Pare.Cli.Commands.CostCache.Parse(["1 0.00075", "2 0.0008", "4 0.00092"])!;
        Assert.Equal(new[] { 1, 2, 4 }, c.Sizes);
        Assert.Equal(0.0008, c.Seconds[1]);
        Assert.Null(Pare.Cli.Commands.CostCache.Parse(["2 0.001"]));             // must start at n = 1
        Assert.Null(Pare.Cli.Commands.CostCache.Parse(["1 0.001", "1 0.002"]));  // sizes increase
        Assert.Null(Pare.Cli.Commands.CostCache.Parse(["1 -0.001"]));
        Assert.Null(Pare.Cli.Commands.CostCache.Parse(["{\"Sizes\":[1]}"]));
        Assert.Null(Pare.Cli.Commands.CostCache.Parse([]));
    }

    [Fact]
    public void Cost_model_interpolates()
    {
        var c = new CostModel([1, 2, 4], [1.0, 1.5, 3.5]);
        Assert.Equal(1.0, c.Time(1));
        Assert.Equal(2.5, c.Time(3), 9);
        Assert.Equal(4.5, c.Time(5), 9);
    }
}
