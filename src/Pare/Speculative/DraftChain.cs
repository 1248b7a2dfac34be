using Pare.Generation;
using Pare.Models;

namespace Pare.Speculative;

/// <summary>
/// Draft-model speculative decoding with a chain (Leviathan et al., 2023; Chen et al., 2023): the draft model, in its
/// own session, continues the history one token at a time (its argmax, or a sample from its processed distribution q
/// when the target samples), and the target verifies the chain in one pass. The draft cache keeps what it evaluated,
/// so the accepted part of a chain is not evaluated again at the next draft.
/// </summary>
public sealed class DraftChain(DraftModelRunner runner, string name = "model") : ModelDrafter(runner, name)
{
    private protected override ModelDraft Build(IReadOnlyList<int> history, int budget, DraftDistribution? dist, Random? rng)
    {
        var d = new ModelDraft(history[^1]);
        budget = Fit(history, budget);
        if (budget < 2) return d;
        var logits = Runner.Sync(history);
        int node = 0;
        while (d.Tree.Count < budget)
        {
            int x, q = -1;
            double prob;
            if (dist == null)
            {
                x = Sampler.ArgMax(logits);
                prob = 1; // a chain needs no path probabilities
            }
            else
            {
                var row = dist.Row(d, Pool);
                dist.Fill(logits, row);
                x = DraftDistribution.Draw(row, rng!);
                q = d.Q.Count - 1;
                prob = row[x];
            }
            node = d.AddTrial(node, x, q, d.PathProb[node] * prob).Child;
            if (d.Tree.Count < budget) logits = Runner.Append(x);
        }
        return d;
    }
}
