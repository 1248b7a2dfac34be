using Pare.Models;
using Pare.Speculative;
using Pare.Tensors;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Speculative;

public class TreeVerificationTests
{
    static string Model() => TestModels.Get("spec", TestModels.OracleShapes[1].Config, GgmlType.F32);

    static DraftTree RandomTree(Random rng, int root, int size, int vocab)
    {
        var t = new DraftTree(root);
        while (t.Count < size) t.Add(rng.Next(vocab), rng.Next(t.Count));
        return t;
    }

    [Fact]
    public void Each_node_gets_the_logits_of_its_own_path()
    {
        using var m = LlamaModel.Load(Model());
        int v = m.Config.VocabSize;
        var rng = new Random(3);
        int[] prefix = [.. Enumerable.Range(0, 9).Select(_ => rng.Next(v))];
        var s = m.CreateSession(new SessionOptions { Threads = 2 });
        s.Forward(prefix);
        var tree = RandomTree(rng, rng.Next(v), 24, v);
        var logits = s.ForwardTree(tree);
        Assert.Equal(prefix.Length, s.Position);
        for (int node = 0; node < tree.Count; node++)
        {
            var path = new List<int>();
            for (int n = node; n >= 0; n = tree.Parents[n]) path.Insert(0, tree.Tokens[n]);
            var plain = m.CreateSession(new SessionOptions { Threads = 2 });
            var expected = plain.Forward([.. prefix, .. path]);
            var actual = logits.AsSpan(node * v, v).ToArray();
            double maxAbs = expected.Max(Math.Abs), maxDiff = expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(maxDiff <= 1e-5 * maxAbs, $"node {node} (depth {tree.Depths[node]}): {maxDiff:G3}");
        }
    }

    [Fact]
    public void A_tree_grown_level_by_level_gets_the_logits_of_one_whole_pass()
    {
        using var m = LlamaModel.Load(Model());
        int v = m.Config.VocabSize;
        var rng = new Random(5);
        int[] prefix = [.. Enumerable.Range(0, 7).Select(_ => rng.Next(v))];
        var whole = m.CreateSession(new SessionOptions { Threads = 2 });
        whole.Forward(prefix);
        var tree = RandomTree(rng, rng.Next(v), 26, v);
        var expected = whole.ForwardTree(tree);
        // The same tree grown in levels of uneven size, each level one pass over its new nodes only.
        var grown = new DraftTree(tree.Tokens[0]);
        var levels = m.CreateSession(new SessionOptions { Threads = 2 });
        levels.Forward(prefix);
        var actual = new float[tree.Count * v];
        levels.ForwardTree(grown, 0, actual);
        foreach (int end in new[] { 2, 3, 9, 10, 20, tree.Count })
        {
            int from = grown.Count;
            for (int i = from; i < end; i++) grown.Add(tree.Tokens[i], tree.Parents[i]);
            levels.ForwardTree(grown, from, actual.AsSpan(from * v));
        }
        Assert.Equal(prefix.Length, levels.Position);
        double maxAbs = expected.Max(Math.Abs), maxDiff = expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(maxDiff <= 1e-5 * maxAbs, $"max difference {maxDiff:G3}");
        // The incremental draft session of DraftModelRunner: a grown tree evaluated again costs only its new nodes.
        using var runner = new DraftModelRunner(m, 64, 2);
        var history = prefix.Append(tree.Tokens[0]).ToList();
        var t2 = new DraftTree(tree.Tokens[0]);
        for (int i = 1; i < 10; i++) t2.Add(tree.Tokens[i], tree.Parents[i]);
        runner.EvaluateTree(history, t2);
        long before = runner.TokensEvaluated;
        for (int i = 10; i < tree.Count; i++) t2.Add(tree.Tokens[i], tree.Parents[i]);
        var all = runner.EvaluateTree(history, t2).ToArray();
        Assert.Equal(tree.Count - 10, runner.TokensEvaluated - before);
        Assert.True(expected.Zip(all, (a, b) => Math.Abs(a - b)).Max() <= 1e-5 * maxAbs);
    }

    [Fact]
    public void Committing_a_path_leaves_the_cache_as_plain_decoding_would()
    {
        using var m = LlamaModel.Load(Model());
        int v = m.Config.VocabSize;
        var rng = new Random(4);
        int[] prefix = [.. Enumerable.Range(0, 5).Select(_ => rng.Next(v))];
        var s = m.CreateSession();
        s.Forward(prefix);
        var tree = RandomTree(rng, rng.Next(v), 30, v);
        s.ForwardTree(tree);
        int deepest = Enumerable.Range(0, tree.Count).MaxBy(i => tree.Depths[i]);
        var path = new List<int>();
        for (int n = deepest; n >= 0; n = tree.Parents[n]) path.Insert(0, n);
        s.CommitTree(path);
        Assert.Equal(prefix.Length + path.Count, s.Position);
        int probe = rng.Next(v);
        var after = s.Forward([probe]);
        var plain = m.CreateSession().Forward([.. prefix, .. path.Select(n => tree.Tokens[n]), probe]);
        Assert.True(after.Zip(plain, (a, b) => Math.Abs(a - b)).Max() <= 1e-5 * plain.Max(Math.Abs));
    }
}
