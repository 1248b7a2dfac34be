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
/// The draft probability is mapped to an acceptance estimate learnt from the verified trees (per bin of q, how often the
/// target chose the drafted child; prior: q itself), since a small draft model's probabilities are not calibrated.
/// When the target samples, the tree grows level by level and each node's children are samples from q (their number
/// decided by the same greedy rule before any is drawn), as lossless recursive rejection requires.
/// </summary>
public sealed class DySpec(DraftModelRunner runner, string name = "dyspec", int maxRounds = 8, int candidates = 8, double minPathProb = 1e-4) : ModelDrafter(runner, name)
{
    // Calibration of draft probability to acceptance (DySpec's premise is that the two are correlated; here the
    // correlation is measured): per bin of q(child | parent), how often the target's choice at the parent was that child.
    const int Bins = 20;
    const double Prior = 4;
    readonly double[] _accepted = new double[Bins], _seen = new double[Bins];
    // Draft probability of each node of the last greedy tree given its parent (root 1), to learn from its verification.
    readonly List<float> _lastQ = [];
    DraftTree? _lastTree;

    /// <summary>Estimated chance that the target accepts a child the draft gives probability <paramref name="q"/> (prior: q itself).</summary>
    public double Acceptance(double q)
    {
        int b = Math.Clamp((int)(q * Bins), 0, Bins - 1);
        return (_accepted[b] + Prior * q) / (_seen[b] + Prior);
    }

    public int MaxRounds { get; } = maxRounds;

    private protected override ModelDraft Build(IReadOnlyList<int> history, int budget, DraftDistribution? dist, Random? rng) =>
        dist == null ? Grow(new ModelDraft(history[^1]), history, budget) : GrowSampled(new ModelDraft(history[^1]), history, budget, dist, rng!);

    /// <summary>Greedy growth of <paramref name="d"/> (its nodes not yet evaluated) up to <paramref name="budget"/> nodes.</summary>
    internal ModelDraft Grow(ModelDraft d, IReadOnlyList<int> history, int budget)
    {
        budget = Fit(history, budget);
        var tree = d.Tree;
        var frontier = Enumerable.Range(0, tree.Count).ToList();
        // Candidates: (node, rank among its draft top tokens, path probability); per evaluated node its top tokens and probabilities.
        var heap = new PriorityQueue<(int Node, int Rank, double Value), double>();
        var tops = new Dictionary<int, (int[] Tokens, float[] Probs)>();
        var top = new TopSelector();
        double topSum = 0; int topSeen = 0;
        _lastTree = tree;
        _lastQ.Clear();
        for (int i = 0; i < tree.Count; i++) _lastQ.Add(float.NaN); // nodes given in (retrieval) are not learnt from
        for (int round = 0; round < MaxRounds && tree.Count < budget && frontier.Count > 0; round++)
        {
            var logits = Runner.EvaluateTree(history, tree);
            foreach (int node in frontier)
            {
                var probs = Runner.Probabilities(logits.Slice(node * Runner.Vocab, Runner.Vocab));
                int k = Math.Min(candidates, probs.Length);
                top.Select(probs, k);
                tops[node] = (top.Ids[..k], top.Keys[..k]);
                double a0 = Acceptance(top.Keys[0]);
                topSum += a0; topSeen++;
                heap.Enqueue((node, 0, d.PathProb[node] * a0), -d.PathProb[node] * a0);
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
                if (isNew) { frontier.Add(child); bar = Math.Max(bar, c.Value * alpha); _lastQ.Add(probs[c.Rank]); }
                if (c.Rank + 1 < tokens.Length)
                {
                    double v = d.PathProb[c.Node] * Acceptance(probs[c.Rank + 1]);
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
        budget = Fit(history, budget);
        var tree = d.Tree;
        var sorted = new List<float>();
        for (int depth = 0; depth < MaxRounds && tree.Count < budget; depth++)
        {
            var level = Enumerable.Range(0, tree.Count).Where(i => tree.Depths[i] == depth).ToList();
            if (level.Count == 0) break;
            var logits = Runner.EvaluateTree(history, tree);
            var rows = new Dictionary<int, (float[] Q, int Index, float[] Sorted)>();
            var heap = new PriorityQueue<(int Node, int Rank), double>();
            foreach (int node in level)
            {
                var q = dist.Row(d, Pool);
                dist.Fill(logits.Slice(node * Runner.Vocab, Runner.Vocab), q);
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

    /// <summary>Learns the calibration from a verified greedy tree: was each drafted child the target's choice at its parent?</summary>
    public override void Update(IReadOnlyList<int> history, DraftTree tree, ReadOnlySpan<float> logits, int vocab)
    {
        if (!ReferenceEquals(tree, _lastTree) || _lastQ.Count != tree.Count) return;
        var choice = new Dictionary<int, int>();
        for (int i = 1; i < tree.Count; i++)
        {
            if (float.IsNaN(_lastQ[i])) continue;
            int parent = tree.Parents[i];
            if (!choice.TryGetValue(parent, out int best)) choice[parent] = best = Sampler.ArgMax(logits.Slice(parent * vocab, vocab));
            int b = Math.Clamp((int)(_lastQ[i] * Bins), 0, Bins - 1);
            _seen[b]++;
            if (best == tree.Tokens[i]) _accepted[b]++;
        }
        _lastTree = null;
    }
}
