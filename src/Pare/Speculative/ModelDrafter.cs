using Pare.Generation;

namespace Pare.Speculative;

/// <summary>
/// The plumbing every model drafter shares (chain, fixed tree, DySpec, RASD, self-drafting): the draft session
/// (<see cref="DraftModelRunner"/>, created by <see cref="Drafters.Create(string, Models.InferenceSession)"/>), reset at
/// each new sequence; the budget clipped to the room left in the draft context; greedy and sampled drafting through one
/// <see cref="Build"/> (a draft distribution q under sampling, none for greedy); and the pool of dense q rows reused
/// across steps. Syncing with the target's accepted path and rewinding the draft cache happen inside the runner
/// (<see cref="DraftModelRunner.Sync"/>, <see cref="DraftModelRunner.EvaluateTree"/>) at each draft.
/// </summary>
public abstract class ModelDrafter(DraftModelRunner runner, string name) : IModelDrafter
{
    /// <summary>Dense q rows (vocab each) reused across steps under sampling: at most budget rows live.</summary>
    private protected readonly List<float[]> Pool = [];

    public string Name { get; } = name;
    public DraftModelRunner Runner => runner;

    /// <summary>A new sequence: the draft cache is forgotten.</summary>
    public virtual void Start(IReadOnlyList<int> prompt, ReadOnlySpan<float> promptLogits, int vocab) => runner.Reset();

    public DraftTree Draft(IReadOnlyList<int> history, int budget) => Build(history, budget, null, null).Tree;

    public ModelDraft DraftSampled(IReadOnlyList<int> history, int budget, SamplingOptions sampling, Random rng) =>
        Build(history, budget, new DraftDistribution(sampling, runner.Vocab), rng);

    /// <summary>Learns from a verified tree (nothing by default).</summary>
    public virtual void Update(IReadOnlyList<int> history, DraftTree tree, ReadOnlySpan<float> logits, int vocab) { }

    /// <summary>The budget clipped to the draft context: nodes sit at history.Count - 1 + depth.</summary>
    protected int Fit(IReadOnlyList<int> history, int budget) => Math.Min(budget, runner.Room(history) + 1);

    /// <summary>Drafts a tree rooted at history[^1] of at most <paramref name="budget"/> nodes: greedy when <paramref name="dist"/> is null, else sampled from q with <paramref name="rng"/>.</summary>
    private protected abstract ModelDraft Build(IReadOnlyList<int> history, int budget, DraftDistribution? dist, Random? rng);
}
