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
            often.Timed(n, 3, 5 * Costs.Time(n));
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

    [Fact]
    public void A_class_whose_drafted_steps_measure_slower_than_plain_decodes_plain_probes_its_smallest_tree_and_comes_back()
    {
        var costs = new CostModel([1, 2, 4, 8], [1.0, 1.1, 1.2, 1.5]);
        var sizer = new TreeSizer(costs, Spec);
        // Guesses where nothing repeats: every tree accepts one guess (2 tokens) and its step measures 2.5 s, against
        // 1-second plain steps: 0.8 tokens per second. (Its trees priced at their measured scale say the same here; what
        // is tested is the plain decoding, the probes and the return of a class measured slower.)
        int trees = 0, probes = 0, steps = 0;
        for (int i = 0; i < 1000; i++)
        {
            int n = sizer.Choose(true, 1.0);
            if (i >= 100) steps++;
            if (n <= 1) continue;
            if (i >= 100) { trees++; if (sizer.Probing) probes++; }
            sizer.Observe(n, [0, 1]);
            sizer.Timed(n, 2, 2.5);
        }
        // After the first steps, mostly plain: a probe of the smallest tree at most every 64 steps (its measured cost
        // x 1% apart, at most MaxProbeInterval), and as it accepted a guess, the class's trees measured afresh: 3 more
        // steps before they measure losing again.
        Assert.InRange(probes, 1, steps / 64 + 1);
        Assert.InRange(trees, probes, 4 * (probes + 1));
        // The text turns predictable: the probes measure 2 tokens in 1.1 s, and the class drafts again.
        int drafted = 0;
        for (int i = 0; i < 1000; i++)
        {
            int n = sizer.Choose(true, 1.0);
            if (n <= 1) continue;
            sizer.Observe(n, [.. Enumerable.Range(0, n)]);
            sizer.Timed(n, n, costs.Time(n));
            if (i >= 900) drafted++;
        }
        Assert.False(sizer.Losing(1.0));
        Assert.True(drafted >= 95, $"{drafted} of the last 100 steps drafted");
    }

    [Fact]
    public void A_class_measured_losing_probes_at_once_where_a_probe_is_due_and_otherwise_waits_for_its_schedule()
    {
        var costs = new CostModel([1, 2, 4, 8], [1.0, 1.1, 1.2, 1.5]);
        var sizer = new TreeSizer(costs, Spec);
        // Chains that fail (one token per 2.5 s step against 1-second plain steps): the class measures losing.
        for (int i = 0; i < 400; i++)
        {
            int n = sizer.Choose(true, 1.0);
            if (n <= 1) continue;
            sizer.Observe(n, [0]);
            sizer.Timed(n, 1, 2.5);
        }
        Assert.True(sizer.Losing(1.0));
        // Its next probe is at least 8 steps away: plain without a due probe (the schedule's count moves on).
        Assert.Equal(1, sizer.Choose(true, 1.0));
        Assert.False(sizer.Probing);
        // The context shows the draft would be accepted (StepPlanner's Followed): a probe now, of the tree it would draft;
        // not where probes may not be made.
        Assert.Equal(1, sizer.Choose(false, 1.0, due: true));
        int n2 = sizer.Choose(true, 1.0, due: true);
        Assert.True(n2 > 1 && sizer.Probing, $"budget {n2}, probing {sizer.Probing}");
        // Accepted whole, and due again at the next steps (the text goes on as the draft said): a few such probes measure the
        // class winning, then its steps draft without probes.
        int probes = 1;
        for (int n = n2; sizer.Losing(1.0) && probes < 20; probes++)
        {
            sizer.Observe(n, [.. Enumerable.Range(0, n)]);
            sizer.Timed(n, n, costs.Time(n));
            n = sizer.Choose(true, 1.0, due: true);
            Assert.True(n > 1);
        }
        Assert.True(probes <= 10, $"{probes} due probes to win the class back");
        Assert.True(sizer.Choose(true, 1.0) > 1 && !sizer.Probing);
    }

    [Fact]
    public void Filled_trees_that_keep_the_filled_estimates_fresh_come_four_times_rarer_while_the_fillings_nodes_carry_nothing()
    {
        var costs = new CostModel([1, 2, 4, 8], [1.0, 1.1, 1.2, 2.0]);
        // Prompt lookup's chain (5 tokens, the tree's first 6 nodes) accepted whole, the guesses after it never: the sizer
        // drafts the chain alone, and fills only to keep its filled estimates fresh (every 32nd step before; the filling's
        // nodes carry 0 tokens, less than a node of the chain earns, so every 128th).
        int Filled(int[] guessPath)
        {
            var sizer = new TreeSizer(costs, Spec);
            int filled = 0;
            for (int i = 0; i < 2000; i++)
            {
                int n = sizer.Choose(true, 1.0), lead = 6;
                if (n <= 1) continue;
                int nodes = sizer.Fill ? n : Math.Min(n, lead);
                int[] path = nodes > lead ? [.. Enumerable.Range(0, lead), .. guessPath] : [.. Enumerable.Range(0, Math.Min(lead, nodes))];
                if (path.Length > 0 && path[^1] >= nodes) path = path[..^guessPath.Length];
                sizer.Observe(nodes, path, lead);
                sizer.Timed(nodes, path.Length, costs.Time(nodes));
                if (i >= 1000 && sizer.Fill && nodes > lead) filled++;
            }
            return filled;
        }
        int idle = Filled([]);
        Assert.InRange(idle, 1, 1000 / 128 + 2);
        // Where two guesses after the chain are accepted at every filled tree (2 tokens for the 2 guesses of a budget of 8:
        // more than the chain's 6 tokens in T(6) = 1.6 earn per node of T(8)'s mean slope), every 32nd.
        int paying = Filled([6, 7]);
        Assert.True(paying >= 1000 / 32 - 2, $"{paying} filled trees of 1000 steps where the filling pays ({idle} where it does not)");
    }

    [Fact]
    public void A_drafter_that_fills_its_trees_drafts_its_lead_alone_where_the_filling_is_not_accepted_and_fills_where_it_is()
    {
        // T(1) = 1, T(2) = 1.1, T(4) = 1.2, T(8) = 2 (T(3) = 1.15, T(6) = 1.6 between): a cheap chain, a costly filled tree.
        var costs = new CostModel([1, 2, 4, 8], [1.0, 1.1, 1.2, 2.0]);
        // Prompt lookup's chain is 2 or 5 tokens long in turn (the tree's first 3 or 6 nodes, root included) and is
        // accepted whole; the guesses that fill the budget are never accepted. Filled, a budget of 8 verifies 8 nodes for
        // 3.5 tokens a step; unfilled, 3 or 6 nodes for the same tokens.
        var sizer = new TreeSizer(costs, Spec);
        int unfilled = 0; string dbg = "";
        for (int i = 0; i < 300; i++)
        {
            int n = sizer.Choose(true, 1.0), lead = i % 2 == 0 ? 3 : 6;
            if (n <= 1) continue;
            int nodes = sizer.Fill ? n : Math.Min(n, lead);
            int[] path = [.. Enumerable.Range(0, Math.Min(lead, nodes))];
            sizer.Observe(nodes, path, lead);
            sizer.Timed(nodes, path.Length, costs.Time(nodes));
            if (i >= 200 && !sizer.Fill) unfilled++;
            if (i >= 200) dbg += $"{n}{(sizer.Fill ? "F" : "u")} ";
        }
        // Filled trees only now and then (every 32nd step: the filled estimates past the chain are kept fresh).
        Assert.True(unfilled >= 90, $"{unfilled} of the last 100 steps unfilled {dbg}");
        // Where filling guesses are accepted (the chain's first token is wrong, the guesses under the root carry 3 more
        // tokens), the filled tree pays and is drafted.
        var filling = new TreeSizer(costs, Spec);
        int filled = 0;
        for (int i = 0; i < 300; i++)
        {
            int n = filling.Choose(true, 1.0);
            if (n <= 1) continue;
            int nodes = filling.Fill ? n : Math.Min(n, 3);
            int[] path = [0, .. new[] { 3, 4, 5 }.TakeWhile(x => x < nodes)];
            filling.Observe(nodes, path, lead: 3);
            filling.Timed(nodes, path.Length, costs.Time(nodes));
            if (i >= 200 && filling.Fill && nodes > 3) filled++;
        }
        Assert.True(filled >= 90, $"{filled} of the last 100 steps filled");
    }
}
