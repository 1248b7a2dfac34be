using Pare.Generation;

namespace Pare.Speculative;

/// <summary>
/// DySpec (Xiong et al., 2024, "DySpec: Faster Speculative Decoding with Dynamic Token Tree Structure"): the draft tree
/// is grown greedily at run time, always at the candidate with the highest draft path probability (the product of the
/// draft model's probabilities along its path, which the paper shows tracks the chance the target accepts it), up to
/// the node budget the cost model T(n) chose (<see cref="TreeSizer"/>). The draft model evaluates the tree in rounds:
/// one pass gives the distributions at every node added in the previous round, and a round keeps adding the best
/// candidates until the best one left is likely worse than a child of a node it just added (that node's path
/// probability times the mean top draft probability seen), which needs the next round.
/// When the target samples, the tree grows level by level and each node's children are samples from q (their number
/// decided by the same greedy rule before any is drawn), as lossless recursive rejection requires.
/// </summary>
public sealed class DySpec(DraftModelRunner runner, string name = "dyspec", int maxRounds = 8, int candidates = 8, double minPathProb = 1e-4) : IModelDrafter
{
    readonly List<float[]> _pool = [];

    public string Name { get; } = name;
    public DraftModelRunner Runner => runner;
    public int MaxRounds { get; } = maxRounds;

    public void Start(IReadOnlyList<int> prompt, ReadOnlySpan<float> promptLogits, int vocab) => runner.Reset();

    public DraftTree Draft(IReadOnlyList<int> history, int budget) => Grow(new ModelDraft(history[^1]), history, budget).Tree;

    public ModelDraft DraftSampled(IReadOnlyList<int> history, int budget, SamplingOptions sampling, Random rng) =>
        GrowSampled(new ModelDraft(history[^1]), history, budget, new DraftDistribution(sampling, runner.Vocab), rng);

    /// <summary>Greedy growth of <paramref name="d"/> (its nodes not yet evaluated) up to <paramref name="budget"/> nodes.</summary>
    internal ModelDraft Grow(ModelDraft d, IReadOnlyList<int> history, int budget)
    {
        budget = Math.Min(budget, runner.Room(history) + 1);
        var tree = d.Tree;
        var frontier = Enumerable.Range(0, tree.Count).ToList();
        // Candidates: (node, rank among its draft top tokens, path probability); per evaluated node its top tokens and probabilities.
        var heap = new PriorityQueue<(int Node, int Rank, double Value), double>();
        var tops = new Dictionary<int, (int[] Tokens, float[] Probs)>();
        var top = new TopSelector();
        double topSum = 0; int topSeen = 0;
        for (int round = 0; round < MaxRounds && tree.Count < budget && frontier.Count > 0; round++)
        {
            var logits = runner.EvaluateTree(history, tree);
            foreach (int node in frontier)
            {
                var probs = runner.Probabilities(logits.Slice(node * runner.Vocab, runner.Vocab));
                int k = Math.Min(candidates, probs.Length);
                top.Select(probs, k);
                tops[node] = (top.Ids[..k], top.Keys[..k]);
                topSum += top.Keys[0]; topSeen++;
                heap.Enqueue((node, 0, d.PathProb[node] * top.Keys[0]), -d.PathProb[node] * top.Keys[0]);
            }
            frontier.Clear();
            double alpha = topSum / topSeen, bar = 0;
            while (heap.TryPeek(out var c, out _) && tree.Count < budget)
            {
                // The last round fills the budget: no later round could expand the nodes it adds.
                if ((c.Value < bar && round < MaxRounds - 1) || c.Value < minPathProb) break;
                heap.Dequeue();
                var (tokens, probs) = tops[c.Node];
                var (child, isNew) = d.AddTrial(c.Node, tokens[c.Rank], -1, c.Value);
                if (isNew) { frontier.Add(child); bar = Math.Max(bar, c.Value * alpha); }
                if (c.Rank + 1 < tokens.Length)
                {
                    double v = d.PathProb[c.Node] * probs[c.Rank + 1];
                    heap.Enqueue((c.Node, c.Rank + 1, v), -v);
                }
            }
        }
        return d;
    }

    /// <summary>
    /// Sampled growth, level by level: at each level the number of samples per node is allotted greedily by the expected
    /// path probability of its k-th sample (path probability x the k-th largest q), then the samples are drawn.
    /// </summary>
    internal ModelDraft GrowSampled(ModelDraft d, IReadOnlyList<int> history, int budget, DraftDistribution dist, Random rng)
    {
        budget = Math.Min(budget, runner.Room(history) + 1);
        var tree = d.Tree;
        var sorted = new List<float>();
        for (int depth = 0; depth < MaxRounds && tree.Count < budget; depth++)
        {
            var level = Enumerable.Range(0, tree.Count).Where(i => tree.Depths[i] == depth).ToList();
            if (level.Count == 0) break;
            var logits = runner.EvaluateTree(history, tree);
            var rows = new Dictionary<int, (float[] Q, int Index, float[] Sorted)>();
            var heap = new PriorityQueue<(int Node, int Rank), double>();
            foreach (int node in level)
            {
                var q = dist.Row(d, _pool);
                dist.Fill(logits.Slice(node * runner.Vocab, runner.Vocab), q);
                var s = q.Where(v => v > 0).OrderDescending().Take(candidates).ToArray();
                rows[node] = (q, d.Q.Count - 1, s);
                heap.Enqueue((node, 0), -d.PathProb[node] * s[0]);
            }
            var count = new Dictionary<int, int>();
            int room = budget - tree.Count;
            while (room > 0 && heap.TryDequeue(out var c, out double negValue))
            {
                if (-negValue < minPathProb) break;
                count[c.Node] = count.GetValueOrDefault(c.Node) + 1;
                room--;
                var s = rows[c.Node].Sorted;
                if (c.Rank + 1 < s.Length) heap.Enqueue((c.Node, c.Rank + 1), -d.PathProb[c.Node] * s[c.Rank + 1]);
            }
            if (count.Count == 0) break;
            foreach (int node in level)
                for (int j = 0; j < count.GetValueOrDefault(node); j++)
                {
                    var (q, index, _) = rows[node];
                    int x = DraftDistribution.Draw(q, rng);
                    d.AddTrial(node, x, index, d.PathProb[node] * q[x]);
                }
        }
        return d;
    }

    public void Update(IReadOnlyList<int> history, DraftTree tree, ReadOnlySpan<float> logits, int vocab) { }
}
