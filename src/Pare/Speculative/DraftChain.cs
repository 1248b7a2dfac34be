using Pare.Generation;
using Pare.Models;

namespace Pare.Speculative;

/// <summary>
/// Draft-model speculative decoding with a chain (Leviathan et al., 2023; Chen et al., 2023): the draft model, in its
/// own session, continues the history one token at a time (its argmax, or a sample from its processed distribution q
/// when the target samples), and the target verifies the chain in one pass. The draft cache keeps what it evaluated,
/// so the accepted part of a chain is not evaluated again at the next draft.
/// </summary>
public sealed class DraftChain(DraftModelRunner runner, string name = "model") : IModelDrafter
{
    readonly List<float[]> _pool = [];

    public string Name { get; } = name;
    public DraftModelRunner Runner => runner;

    public void Start(IReadOnlyList<int> prompt, ReadOnlySpan<float> promptLogits, int vocab) => runner.Reset();

    public DraftTree Draft(IReadOnlyList<int> history, int budget) => Build(history, budget, null, null).Tree;

    public ModelDraft DraftSampled(IReadOnlyList<int> history, int budget, SamplingOptions sampling, Random rng) =>
        Build(history, budget, new DraftDistribution(sampling, runner.Vocab), rng);

    ModelDraft Build(IReadOnlyList<int> history, int budget, DraftDistribution? dist, Random? rng)
    {
        var d = new ModelDraft(history[^1]);
        budget = Math.Min(budget, runner.Room(history) + 1);
        if (budget < 2) return d;
        var logits = runner.Sync(history);
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
                var row = dist.Row(d, _pool);
                dist.Fill(logits, row);
                x = DraftDistribution.Draw(row, rng!);
                q = d.Q.Count - 1;
                prob = row[x];
            }
            node = d.AddTrial(node, x, q, d.PathProb[node] * prob).Child;
            if (d.Tree.Count < budget) logits = runner.Append(x);
        }
        return d;
    }

    public void Update(IReadOnlyList<int> history, DraftTree tree, ReadOnlySpan<float> logits, int vocab) { }
}
