using Pare.Generation;

namespace Pare.Speculative;

/// <summary>
/// `auto` with a draft model (`auto:FILE`): several drafters (arms) behind one name, and each step drafts with the one
/// that measures fastest. The choice is made by the measured fallback itself (<see cref="StepRates"/>: per-arm
/// tokens per second of wall time, an arm not measured yet tried first once the default has had a few steps, losing arms re-measured at growing gaps, plain
/// decoding while no arm beats it), each arm with its own tree sizer. Arms: `auto` (prompt lookup + Token Recycling),
/// ADED, the Lookahead trie, and on the draft model DySpec and the chain, the model arms sharing one draft session
/// (the session syncs to whatever history it is given, so arms can take turns, and it is not advanced while a
/// drafter-free arm drafts: it catches up on the text, in one batched pass of at most <see cref="CatchUpWindow"/> recent
/// tokens, when a model arm drafts again). Arm 0 and the
/// drafting arm learn from every verified tree; the other drafter-free arms that learn from the text alone
/// (<see cref="IHistoryLearner"/>: ADED, the Lookahead trie) skip the update and catch up on the text before they draft
/// (their updates were ~2% of a step of `auto:FILE`, for arms that draft a few percent of the steps).
/// <see cref="Draft"/> and <see cref="DraftSampled"/> draft with <see cref="Current"/>.
/// </summary>
public sealed class DrafterChoice : IModelDrafter
{
    readonly IDrafter[] _arms;

    /// <summary>
    /// The model arms' draft session (<see cref="Drafters.Create(string, Models.InferenceSession)"/>) catches up on at most
    /// this many recent tokens (<see cref="DraftModelRunner.CatchUpWindow"/>): a model arm re-measured after hundreds of
    /// drafter-free steps, or at a new prompt, then prefills 64 tokens on the draft model rather than the whole text.
    /// </summary>
    public const int CatchUpWindow = 64;

    public DrafterChoice(string name, DraftModelRunner runner, params IDrafter[] arms)
    {
        if (arms.Length == 0) throw new ArgumentException("at least one arm", nameof(arms));
        Name = name; Runner = runner; _arms = arms;
    }

    public string Name { get; }
    /// <summary>The draft session the model arms share.</summary>
    public DraftModelRunner Runner { get; }
    public IReadOnlyList<IDrafter> Arms => _arms;
    /// <summary>The arm the next draft uses (set by the generator each step).</summary>
    public int Current { get; set; }

    /// <summary>
    /// The estimated cost of each arm's first trial beyond a plain step of the target (seconds; 0 for the drafter-free
    /// arms), from the target's measured pass times <paramref name="costs"/> scaled by the draft model's share of the
    /// target's weights (<paramref name="targetParameters"/>): a catch-up prefill of <see cref="CatchUpWindow"/> tokens,
    /// four single-token draft passes, and a verified tree of 8 nodes that accepts nothing. <see cref="StepRates.SetTrialCosts"/>
    /// defers such a trial until it fits the exploration budget, and while it could not beat the best arm's measured rate.
    /// Indicative (load moves every term), as the budget is.
    /// </summary>
    public double[] TrialSeconds(CostModel costs, long targetParameters)
    {
        double share = (double)Runner.Model.ParameterCount / Math.Max(1, targetParameters);
        int window = Runner.CatchUpWindow > 0 ? Runner.CatchUpWindow : CatchUpWindow;
        double model = share * (costs.Time(window) + 4 * costs.Time(1)) + costs.Time(8) - costs.Time(1);
        return [.. _arms.Select(a => a is IModelDrafter ? model : 0)];
    }

    /// <summary>
    /// Runs every arm once on <paramref name="text"/> (start, catch-up, an 8-node draft, an update with zero logits), so that
    /// their code is compiled before anything is timed; the arms keep what they learnt (throw-away drafters only:
    /// bench-spec's warm-up). Since the other arms wait for the default arm to settle (<see cref="StepRates.SettleSteps"/>),
    /// the warm-up generation no longer reaches their first trials, and the first lane's compiled them inside a timed one
    /// (12.6 ms for ADED's first draft in session 15's trace, against 0.1-0.8 ms in the other lanes).
    /// </summary>
    public void Exercise(IReadOnlyList<int> text, int vocab)
    {
        if (text.Count == 0) return;
        foreach (var arm in _arms)
        {
            arm.Start(text, [], vocab);
            if (arm is IHistoryLearner h) h.CatchUp(text, text.Count - 1);
            var tree = arm.Draft(text, 8);
            arm.Update(text, tree, new float[tree.Count * vocab], vocab);
        }
    }

    public void Start(IReadOnlyList<int> prompt, ReadOnlySpan<float> promptLogits, int vocab)
    {
        // Text-learning arms other than arm 0 start empty and read the prompt when they first draft (CatchUp): the
        // Lookahead trie's insertion of every prompt n-gram is otherwise paid at every prompt by an arm that drafts rarely.
        for (int a = 0; a < _arms.Length; a++)
            if (a > 0 && _arms[a] is IHistoryLearner) _arms[a].Start([], [], vocab);
            else _arms[a].Start(prompt, promptLogits, vocab);
    }

    public DraftTree Draft(IReadOnlyList<int> history, int budget) => Arm(history).Draft(history, budget);

    /// <summary>The current arm, caught up on the text before the pending token (history[^1]) if it skipped updates.</summary>
    IDrafter Arm(IReadOnlyList<int> history)
    {
        var arm = _arms[Current];
        if (arm is IHistoryLearner h) h.CatchUp(history, history.Count - 1);
        return arm;
    }

    /// <summary>Drafts for sampling with the current arm: a model arm samples from q; a drafter-free arm's children are point-mass proposals.</summary>
    public ModelDraft DraftSampled(IReadOnlyList<int> history, int budget, SamplingOptions sampling, Random rng)
    {
        var arm = Arm(history);
        if (arm is IModelDrafter m) return m.DraftSampled(history, budget, sampling, rng);
        var tree = arm.Draft(history, budget);
        var d = new ModelDraft(tree.Tokens[0]);
        for (int i = 1; i < tree.Count; i++)
        {
            d.Tree.Add(tree.Tokens[i], tree.Parents[i]);
            d.PathProb.Add(1.0);
            d.Trials.Add((tree.Parents[i], i, -1));
        }
        return d;
    }

    public void Update(IReadOnlyList<int> history, DraftTree tree, ReadOnlySpan<float> logits, int vocab)
    {
        for (int a = 0; a < _arms.Length; a++)
            if (a == 0 || a == Current || _arms[a] is not IHistoryLearner) _arms[a].Update(history, tree, logits, vocab);
    }
}
