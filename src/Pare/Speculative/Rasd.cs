using Pare.Generation;

namespace Pare.Speculative;

/// <summary>
/// RASD (Quan et al., 2025, "RASD: Retrieval-Augmented Speculative Decoding"): a retrieval tree, from the drafter-free
/// sources Pare has (prompt lookup, the Lookahead trie, Token Recycling's matrix), is evaluated by the draft model in
/// one pass and pruned by the draft model's probabilities (the nodes with the highest draft path probability are kept,
/// into half the budget; a path probability never grows along a path, so the kept set is a tree). It is then fused
/// with the draft model's own tree by longest-prefix matching: the DySpec growth continues from the kept retrieval
/// tree, and a draft token that a retrieval branch already holds merges into it (<see cref="DraftTree.Add"/>), so
/// shared prefixes are verified once. Retrieval proposals are deterministic; under sampling they are verified as point
/// masses beside the draft model's samples.
/// </summary>
public sealed class Rasd(DraftModelRunner runner, string name = "rasd") : ModelDrafter(runner, name)
{
    readonly DySpec _dyspec = new(runner, name);
    readonly CompositeDrafter _retrieval = new("retrieval", new PromptLookup(minNgram: 2), new LookaheadTrie(), new TokenRecycling());

    /// <summary>Share of the budget the pruned retrieval tree may take. Default 0.75 (retrieval drafts cost no draft pass).</summary>
    public double RetrievalShare { get; init; } = 0.75;

    public override void Start(IReadOnlyList<int> prompt, ReadOnlySpan<float> promptLogits, int vocab)
    {
        base.Start(prompt, promptLogits, vocab);
        _retrieval.Start(prompt, promptLogits, vocab);
    }

    private protected override ModelDraft Build(IReadOnlyList<int> history, int budget, DraftDistribution? dist, Random? rng) =>
        dist == null ? _dyspec.Grow(Retrieve(history, budget), history, budget) : _dyspec.GrowSampled(Retrieve(history, budget), history, budget, dist, rng!);

    /// <summary>The retrieval tree pruned by the draft model's path probabilities, as deterministic trials.</summary>
    ModelDraft Retrieve(IReadOnlyList<int> history, int budget)
    {
        var d = new ModelDraft(history[^1]);
        budget = Fit(history, budget);
        int keep = (int)(budget * RetrievalShare);
        if (keep < 2) return d;
        var r = _retrieval.Draft(history, Math.Min(2 * budget, Runner.Room(history) + 1));
        if (r.Count < 2) return d;
        var logits = Runner.EvaluateTree(history, r);
        // Path probabilities: q(child | parent) = exp(logit - max) / sum over the parent's row, the row's max and sum once per parent.
        var pp = new double[r.Count];
        var norm = new Dictionary<int, (float Max, double Sum)>();
        pp[0] = 1;
        for (int i = 1; i < r.Count; i++)
        {
            int parent = r.Parents[i];
            var row = logits.Slice(parent * Runner.Vocab, Runner.Vocab);
            if (!norm.TryGetValue(parent, out var n))
            {
                float max = Kernels.Ops.Max(row);
                double sum = 0;
                foreach (float l in row) sum += MathF.Exp(l - max);
                norm[parent] = n = (max, sum);
            }
            pp[i] = pp[parent] * MathF.Exp(row[r.Tokens[i]] - n.Max) / n.Sum;
        }
        // Highest path probability first; on ties the earlier node (a parent before its children).
        var kept = Enumerable.Range(1, r.Count - 1).OrderByDescending(i => pp[i]).ThenBy(i => i).Take(keep - 1).Order().ToArray();
        var map = new int[r.Count];
        foreach (int i in kept) map[i] = d.AddTrial(map[r.Parents[i]], r.Tokens[i], -1, pp[i]).Child;
        return d;
    }

    public override void Update(IReadOnlyList<int> history, DraftTree tree, ReadOnlySpan<float> logits, int vocab)
    {
        _retrieval.Update(history, tree, logits, vocab);
        _dyspec.Update(history, tree, logits, vocab);
    }
}
