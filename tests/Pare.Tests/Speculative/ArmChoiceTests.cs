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
}
