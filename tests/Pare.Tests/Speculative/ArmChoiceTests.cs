using Pare.Speculative;

namespace Pare.Tests.Speculative;

/// <summary>
/// The choice among the arms of `auto:FILE` (<see cref="StepRates.ChooseArm"/>): arm 0, the drafter-free default, keeps
/// the steps unless another arm measures faster per second by <see cref="SpeculativeOptions.MinGain"/>, however many
/// more tokens that arm's steps accept; and it is re-measured often enough to take them back.
/// </summary>
public class ArmChoiceTests
{
    /// <summary>
    /// Drives <paramref name="steps"/> drafted steps: each asks for an arm, then records what that arm's step yields
    /// (tokens, seconds) from <paramref name="cost"/> (arm, step index). Returns how many steps each arm drafted.
    /// </summary>
    static int[] Run(StepRates rates, int arms, int steps, Func<int, int, (int Tokens, double Seconds)> cost, int from = 0)
    {
        var counts = new int[arms];
        for (int i = 0; i < steps; i++)
        {
            int arm = rates.ChooseArm();
            counts[arm]++;
            var (tokens, seconds) = cost(arm, from + i);
            rates.Observe(true, tokens, seconds);
        }
        return counts;
    }

    static StepRates Rates(int arms)
    {
        var rates = new StepRates(new SpeculativeOptions());
        rates.SetArms(arms);
        rates.ObservePlain(1.0);
        return rates;
    }

    [Fact]
    public void An_arm_that_accepts_more_tokens_but_costs_more_per_token_is_only_remeasured()
    {
        // Arm 1 (a draft model) accepts 3 tokens a step but its step costs 2.5 plain steps; arm 0 accepts 2 for 1.2.
        var rates = Rates(2);
        var counts = Run(rates, 2, 400, (arm, _) => arm == 0 ? (2, 1.2) : (3, 2.5));
        Assert.True(counts[1] <= 12, $"the costly arm drafted {counts[1]} of 400 steps");
    }

    [Fact]
    public void The_default_arm_keeps_the_steps_unless_another_beats_it_by_the_minimum_gain()
    {
        // Arm 1 measures 1% faster per second than arm 0: within MinGain (3%), so not worth leaving the default for.
        var rates = Rates(2);
        var counts = Run(rates, 2, 400, (arm, _) => arm == 0 ? (2, 1.0) : (2, 0.99));
        Assert.True(counts[0] >= 380, $"the default arm drafted {counts[0]} of 400 steps");
        // 20% faster: arm 1 takes the steps.
        rates = Rates(2);
        counts = Run(rates, 2, 400, (arm, _) => arm == 0 ? (2, 1.0) : (2, 0.8));
        Assert.True(counts[1] >= 300, $"the faster arm drafted {counts[1]} of 400 steps");
    }

    [Fact]
    public void The_default_arm_takes_the_steps_back_soon_after_it_becomes_faster()
    {
        var spec = new SpeculativeOptions();
        var rates = Rates(3);
        // For 600 steps arm 2 is the fastest; then the text changes and arm 0 is. Arm 0's re-measures stay at most
        // MaxProbeInterval / 4 drafted steps apart, so it is back in charge within a few of them, not after 4 x MaxProbeInterval.
        (int, double) Cost(int arm, int i) => i < 600 ? (arm == 2 ? (4, 1.0) : (1, 1.0)) : (arm == 0 ? (4, 1.0) : (1, 1.0));
        var before = Run(rates, 3, 600, Cost);
        Assert.True(before[2] >= 500, $"arm 2 drafted {before[2]} of 600 steps");
        var after = Run(rates, 3, 200, Cost, from: 600);
        Assert.True(after[0] >= 200 - 2 * spec.MaxProbeInterval / 4 - 10, $"arm 0 drafted {after[0]} of the 200 steps after it became the fastest");
    }

    [Fact]
    public void Another_arm_is_first_tried_only_once_the_default_arm_has_settled()
    {
        // The default arm's first drafted step is unlucky (1 token where it then gets 4, each step 1 s); arm 1 gets 2 tokens
        // in 0.8 s: slower than the default. Tried at the second step, against the default's one-step estimate, it would
        // win twice and draft until the default's re-measures brought its estimate back up (10 of the first 100 steps).
        var rates = Rates(2);
        int defaultSteps = 0, firstTrial = -1;
        var counts = Run(rates, 2, 100, (arm, i) =>
        {
            if (arm == 0) return (defaultSteps++ == 0 ? 1 : 4, 1.0);
            if (firstTrial < 0) firstTrial = i;
            return (2, 0.8);
        });
        Assert.True(counts[1] <= 3, $"the slower arm drafted {counts[1]} of 100 steps");
        Assert.Equal(StepRates.SettleSteps, firstTrial);
        // A default arm with nothing to draft still lets the others be tried: its turns count.
        rates = Rates(2);
        int tried = -1;
        for (int i = 0; i < 20 && tried < 0; i++)
        {
            if (rates.ChooseArm() == 1) { tried = i; rates.Observe(true, 2, 0.8); }
            else rates.Skipped();
        }
        Assert.Equal(StepRates.SettleSteps, tried);
        // Nor does a default arm that measures slower than plain decoding hold them back while the steps go plain (it drafts
        // only as spaced probes then): each plain step is one of its turns.
        rates = Rates(2);
        Assert.Equal(0, rates.ChooseArm());
        rates.Observe(true, 1, 2.0);
        tried = -1;
        for (int i = 1; i < 20 && tried < 0; i++)
            if (rates.ChooseArm() == 1) tried = i;
            else rates.ObservePlain(1.0);
        Assert.Equal(StepRates.SettleSteps, tried);
    }

    [Fact]
    public void One_lucky_step_of_another_arm_does_not_hand_it_the_steps()
    {
        // Arm 1 is slower than arm 0 (2 tokens for 1.5 against 2 for 1.0), but every other time it is re-measured its step
        // is a lucky one (8 tokens for 1.0: a long accepted run). A lucky step is confirmed by the next, which loses: arm 1
        // drafts its re-measures and their confirmations only, never a run of steps as the best.
        var rates = Rates(2);
        int calls = 0, last = -2, run = 0, longest = 0;
        var counts = Run(rates, 2, 2000, (arm, i) =>
        {
            if (arm == 0) return (2, 1.0);
            run = i == last + 1 ? run + 1 : 1;
            longest = Math.Max(longest, run);
            last = i;
            return calls++ % 2 == 1 ? (8, 1.0) : (2, 1.5);
        });
        // Taken as the best after one lucky step, arm 1 drafted 3 steps in a row (its estimate stays above arm 0's x MinGain
        // for two more losing steps); confirmed first, at most 2 (the lucky one and its confirmation).
        Assert.True(longest <= 2, $"arm 1 drafted {longest} steps in a row");
        Assert.True(counts[1] <= 100, $"arm 1 drafted {counts[1]} of 2000 steps");
    }

    [Fact]
    public void A_costly_first_trial_waits_until_it_fits_the_exploration_budget_and_a_winning_arm_still_takes_over()
    {
        // Arms 0 and 1 drafter-free (no trial cost), arm 2 a draft-model arm whose first trial is estimated at 3 s beyond a
        // plain step (a trial that could win: up to 10 tokens in 4 s against the others' 2 a second). With 3 arms each losing
        // arm's share of the budget is 1% / 2 of the time observed, so arm 2 is not tried before 600 s of steps: here 600
        // steps of 1 s.
        var rates = Rates(3);
        rates.SetTrialCosts([5.0, 0, 3.0], 10);
        int first = -1;
        for (int i = 0; i < 2000 && first < 0; i++)
        {
            int arm = rates.ChooseArm();
            if (arm == 2) first = i;
            rates.Observe(true, arm == 2 ? 6 : 2, 1.0);
        }
        Assert.InRange(first, 590, 610);
        // Tried, it measures 3x faster per second (6 tokens for 1 s against 2): it takes the steps, as before.
        var counts = Run(rates, 3, 400, (arm, _) => arm == 2 ? (6, 1.0) : (2, 1.0));
        Assert.True(counts[2] >= 350, $"the faster draft-model arm drafted {counts[2]} of 400 steps");
        // Arm 0 is never deferred (some arm must be measured first), whatever cost it is given; arm 1 (no cost) as soon as
        // arm 0 has settled (StepRates.SettleSteps turns).
        rates = Rates(3);
        rates.SetTrialCosts([5.0, 0, 3.0], 10);
        var early = Run(rates, 3, StepRates.SettleSteps + 2, (_, _) => (2, 1.0));
        Assert.True(early[0] >= StepRates.SettleSteps && early[1] >= 1 && early[2] == 0, $"first steps per arm: {string.Join(", ", early)}");
    }

    [Fact]
    public void A_costly_first_trial_that_could_not_beat_the_measured_rates_is_not_made_until_they_fall()
    {
        // Arm 1 drafter-free; arm 2 a draft-model arm whose first trial costs 3 s beyond a plain step of 1 s: at most 5
        // tokens (its probe's) in 4 s, 1.25 a second. While arm 0 measures 2 tokens a second the trial could
        // not win and is not made, however much time has been observed (its exploration budget long met).
        var rates = Rates(3);
        rates.SetTrialCosts([0, 0, 3.0], 5);
        var counts = Run(rates, 3, 3000, (_, _) => (2, 1.0));
        Assert.Equal(0, counts[2]);
        Assert.True(counts[1] >= 1, "the drafter-free arm is tried");
        // The text turns: arm 0's drafts fail (1 token for 1.2 s, slower than a plain step), arm 1's too. Once the bar
        // falls below what the trial could give (5 tokens in 4 s), arm 2 is tried, and as it wins (4 tokens a second) it
        // takes the steps.
        counts = Run(rates, 3, 400, (arm, _) => arm == 2 ? (4, 1.0) : (1, 1.2));
        Assert.True(counts[2] >= 300, $"the draft-model arm drafted {counts[2]} of 400 steps once the others' rates fell");
        // Priced at 1 s beyond a plain step (5 tokens in 2 s against 2 a second), the same trial is made.
        rates = Rates(3);
        rates.SetTrialCosts([0, 0, 1.0], 5);
        counts = Run(rates, 3, 3000, (_, _) => (2, 1.0));
        Assert.True(counts[2] >= 1, "a first trial that could win is made");
    }

    [Fact]
    public void An_arm_not_measured_yet_waits_for_a_step_that_may_try_it_while_the_best_drafts_the_others()
    {
        // A first trial drafts only where a probe may (evidence in the context); chosen on another step it would only
        // make that step plain. Arm 0 is measured; arm 1 is new: on steps that may not try it, arm 0 drafts.
        var rates = Rates(2);
        Assert.Equal(0, rates.ChooseArm());
        rates.Observe(true, 2, 1.0);
        for (int i = 0; i < 20; i++)
        {
            Assert.Equal(0, rates.ChooseArm(mayTry: false));
            Assert.False(rates.Remeasure);
            rates.Observe(true, 2, 1.0);
        }
        Assert.Equal(1, rates.ChooseArm(mayTry: true));
        // With no arm measured at all, the first is chosen whatever the step (the step decides itself whether it drafts).
        var fresh = Rates(2);
        Assert.Equal(0, fresh.ChooseArm(mayTry: false));
    }

    [Fact]
    public void Remeasuring_losing_arms_costs_at_most_a_percent_or_two_of_the_time()
    {
        // Arm 0: 2 tokens per 1.0 s. Arm 1 (drafter-free, a little slower): 2 per 1.2. Arms 2 and 3 (draft-model arms on a
        // CPU where the draft model does not pay): 3 tokens per 10 s. What the other arms' steps lose against arm 0 (their
        // seconds beyond arm 0's for as many tokens), first trials included, is at most 1.5% of the whole time.
        var rates = Rates(4);
        double total = 0, lost = 0;
        var counts = Run(rates, 4, 4000, (arm, _) =>
        {
            var (tokens, seconds) = arm switch { 0 => (2, 1.0), 1 => (2, 1.2), _ => (3, 10.0) };
            total += seconds;
            lost += seconds - tokens / 2.0;
            return (tokens, seconds);
        });
        Assert.True(lost <= 0.015 * total, $"re-measures lost {lost:F1} s of {total:F1} s ({lost / total:P2}); steps per arm {string.Join(", ", counts)}");
        Assert.True(counts[0] >= 3900, $"arm 0 drafted {counts[0]} of 4000 steps");
    }
}
