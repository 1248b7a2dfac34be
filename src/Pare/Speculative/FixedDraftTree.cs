using Pare.Generation;

namespace Pare.Speculative;

/// <summary>
/// Draft-model speculation with a fixed tree shape (SpecInfer, Miao et al., 2024; Sequoia, Chen et al., 2024): the
/// shape is chosen once, offline, and the draft model fills it level by level: a node of rank r holds the r-th most
/// likely draft token after its parent (or, when the target samples, the parent's r-th sample from q). The shape is
/// Sequoia's: the tree of a given size that maximises the expected accepted length when the child of rank r is
/// accepted with a fixed probability a_r independent of the path; with a_r falling in r and a path's score the
/// product of its a_r, the best tree of n nodes is the first n nodes taken best first, so every prefix of the
/// template is the best smaller tree (what <see cref="TreeSizer"/> assumes).
/// </summary>
public sealed class FixedDraftTree(DraftModelRunner runner, string name = "tree") : ModelDrafter(runner, name)
{
    /// <summary>Assumed acceptance rate per rank (Sequoia's positional acceptance vector, typical of a small draft model).</summary>
    public static readonly double[] RankAcceptance = [0.55, 0.15, 0.07, 0.04, 0.03, 0.02, 0.02, 0.02];

    /// <summary>(parent node, rank): 127 nodes best first, depth at most 8; node i + 1 of the tree is entry i.</summary>
    public static readonly (int Parent, int Rank)[] Template = BuildTemplate(127, 8);

    private protected override ModelDraft Build(IReadOnlyList<int> history, int budget, DraftDistribution? dist, Random? rng)
    {
        var d = new ModelDraft(history[^1]);
        int n = Math.Min(Fit(history, budget), Template.Length + 1) - 1; // template entries used
        if (n < 1) return d;
        // Template node -> tree node (repeated samples share a tree node); the first n entries, filled level by level.
        var map = new int[n + 1];
        var depth = new int[n + 1];
        for (int i = 0; i < n; i++) depth[i + 1] = depth[Template[i].Parent] + 1;
        int maxDepth = depth.Max();
        var top = new TopSelector();
        for (int level = 1; level <= maxDepth; level++)
        {
            var logits = Runner.EvaluateTree(history, d.Tree);
            var rows = new Dictionary<int, (int[] Tokens, int Q)>();
            for (int i = 0; i < n; i++)
            {
                if (depth[i + 1] != level) continue;
                var (parent, rank) = Template[i];
                int pn = map[parent];
                var row = logits.Slice(pn * Runner.Vocab, Runner.Vocab);
                int token, q = -1;
                if (!rows.TryGetValue(pn, out var r))
                {
                    if (dist == null)
                    {
                        top.Select(row, RankAcceptance.Length);
                        r = (top.Ids[..RankAcceptance.Length], -1);
                    }
                    else
                    {
                        dist.Fill(row, dist.Row(d, Pool));
                        r = ([], d.Q.Count - 1);
                    }
                    rows[pn] = r;
                }
                if (dist == null) token = r.Tokens[rank];
                else { q = r.Q; token = DraftDistribution.Draw(d.Q[q], rng!); }
                map[i + 1] = d.AddTrial(pn, token, q, 1).Child;
            }
        }
        return d;
    }

    static (int, int)[] BuildTemplate(int nodes, int maxDepth)
    {
        var result = new List<(int Parent, int Rank)>();
        var frontier = new PriorityQueue<(int Parent, int Rank, int Depth, double Score), double>();
        for (int r = 0; r < RankAcceptance.Length; r++) frontier.Enqueue((0, r, 1, RankAcceptance[r]), -RankAcceptance[r]);
        while (result.Count < nodes && frontier.Count > 0)
        {
            var (parent, rank, depth, score) = frontier.Dequeue();
            result.Add((parent, rank));
            int id = result.Count;
            if (depth < maxDepth)
                for (int r = 0; r < RankAcceptance.Length; r++) frontier.Enqueue((id, r, depth + 1, score * RankAcceptance[r]), -score * RankAcceptance[r]);
        }
        return [.. result];
    }
}
