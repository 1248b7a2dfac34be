using Pare.Speculative;

namespace Pare.Tests.Speculative;

/// <summary>
/// What the tree sizer prices a tree at (<see cref="TreeScale"/>): T(n) times the scale the drafter's drafted steps
/// measured, one scale per drafter shared by its sizers of every context class, and before any measurement never below
/// T(n) itself.
/// </summary>
public class TreeScaleTests
{
    // T(1) = 1, T(2) = 1.5, T(4) = 1.6 (seconds: only the ratios matter).
    static readonly CostModel Costs = new([1, 2, 4], [1.0, 1.5, 1.6]);
    static readonly SpeculativeOptions Spec = new();

    [Fact]
    public void A_context_class_that_never_drafted_prices_its_trees_as_the_drafters_other_classes_measured()
    {
        var shared = new TreeScale();
        var often = new TreeSizer(Costs, Spec, shared);
        var rare = new TreeSizer(Costs, Spec, shared);
        var alone = new TreeSizer(Costs, Spec);
        // The common class drafts 4-node trees that accept 3 tokens, each step measured at 5x T(4) (an expensive drafter):
        // it learns that its trees lose to 1-second plain steps.
        for (int i = 0; i < 30; i++)
        {
            int n = often.Choose(true, 1.0);
            if (n <= 1) continue;
            often.Observe(n, [0, 1, 2]);
            often.Timed(n, 5 * Costs.Time(n));
        }
        Assert.Equal(1, often.Choose(true, 1.0));
        // A class not seen yet tries its budgets on optimistic acceptance; priced with the shared scale it sees that even
        // those lose, priced on its own (scale 1 before a timing) it would draft.
        Assert.Equal(1, rare.Choose(true, 1.0));
        Assert.True(alone.Choose(true, 1.0) > 1);
    }

    [Fact]
    public void Before_its_first_timing_a_tree_costs_at_least_its_measured_pass_even_when_plain_steps_run_faster()
    {
        // Plain steps measure 0.7 T(1) (a plain step skips the tree pass's set-up). 2-node trees accept 2 tokens per step:
        // 2 / T(2) = 1.33 tokens per second against plain decoding's 1 / 0.7 = 1.43, a loss. Priced at 0.7 T(2) (the plain
        // step's ratio, the earlier prior) it looked like a 33% gain.
        var sizer = new TreeSizer(new CostModel([1, 2], [1.0, 1.5]), Spec);
        sizer.Choose(true, 0.7);
        sizer.Observe(2, [0, 1]);
        for (int i = 0; i < 5; i++) Assert.Equal(1, sizer.Choose(false, 0.7));
    }
}
