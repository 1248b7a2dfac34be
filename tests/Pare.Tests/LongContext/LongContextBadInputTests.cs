using Pare.Models;
using Pare.Tests.TestSupport;

namespace Pare.Tests.LongContext;

/// <summary>
/// Issue #14's bad-input acceptance through the CLI: a KV budget larger than the context, a budget of 0, an unknown
/// policy, a needle length that does not fit, and LazyLLM's options; each is one line on stderr, exit code 1 and nothing
/// on stdout (pare-ref: context 512).
/// </summary>
public class LongContextBadInputTests
{
    public static TheoryData<string[], string> BadInputs() => new()
    {
        { ["needle", "--lengths", "200", "--kv-policy", "quest", "--kv-budget", "5000"], "--kv-budget 5000 is larger than the context of 224 tokens" },
        { ["needle", "--lengths", "200", "--kv-policy", "quest", "--kv-budget", "0"], "--kv-budget must be at least 1" },
        { ["needle", "--lengths", "200", "--kv-policy", "lru", "--kv-budget", "64"], "--kv-policy must be one of" },
        { ["needle", "--lengths", "200", "--kv-policy", "snapkv"], "needs --kv-budget" },
        { ["needle", "--lengths", "1001"], "length 1001 + 24 answer tokens exceeds 2x the model's context of 512 tokens" },
        { ["needle", "--lengths", "200", "--kv-policy", "quest", "--kv-budget", "50", "--kv-renumber", "on"], "--kv-renumber on applies to tokenselect only (got --kv-policy quest)" },
        { ["needle", "--lengths", "200", "--kv-policy", "quest", "--kv-budget", "50", "--kv-scores", "f32"], "--kv-scores applies to tokenselect only (got --kv-policy quest)" },
        { ["needle", "--lengths", "200", "--kv-policy", "tokenselect", "--kv-budget", "50", "--kv-scores", "int2"], "--kv-scores must be int8, int4 or f32" },
        { ["needle", "--lengths", "200", "--kv-policy", "quest", "--kv-budget", "50", "--kv-selection-cache", "0.9"], "--kv-selection-cache applies to tokenselect only (got --kv-policy quest)" },
        { ["needle", "--lengths", "200", "--kv-policy", "tokenselect", "--kv-budget", "50", "--kv-selection-cache", "1.5"], "--kv-selection-cache must be a cosine threshold in (0, 1] or off (got 1.5)" },
        { ["needle", "--lengths", "200", "--kv-policy", "tokenselect", "--kv-budget", "50", "--kv-selection-cache", "0"], "--kv-selection-cache must be a cosine threshold in (0, 1] or off (got 0)" },
        { ["needle", "--lengths", "200", "--kv-policy", "tokenselect", "--kv-budget", "50", "--kv-selection-cache", "high"], "--kv-selection-cache must be a cosine threshold in (0, 1] or off (got high)" },
        { ["run", "--prompt", "hi", "--max-tokens", "2", "--kv-policy", "streaming", "--kv-budget", "50", "--kv-selection-cache", "0.9"], "--kv-selection-cache applies to tokenselect only (got --kv-policy streaming)" },
        { ["needle", "--lengths", "100,1100"], "length 1100 + 24 answer tokens exceeds 2x" },
        { ["needle", "--lengths", "200", "--prefill-prune", "lazy"], "--prefill-prune must be none or lazyllm" },
        { ["needle", "--lengths", "200", "--prefill-prune", "lazyllm", "--keep", "0"], "--keep must be in (0, 1]" },
        { ["needle", "--lengths", "200", "--prefill-prune", "lazyllm", "--keep", "1.5"], "--keep must be in (0, 1]" },
        { ["needle", "--lengths", "200", "--prefill-prune", "lazyllm", "--prune-at", "0.5,1.2"], "(--prune-at) are fractions of the depth in (0, 1)" },
        { ["needle", "--lengths", "200", "--prefill-prune", "lazyllm", "--prune-at", "half"], "--prune-at: 'half' is not a comma-separated list" },
        { ["needle", "--lengths", "200", "--prefill-prune", "lazyllm", "--lazy-pool", "4"], "(--lazy-pool) must be an odd number of tokens >= 1 (got 4)" },
        { ["needle", "--lengths", "200", "--prefill-prune", "lazyllm", "--lazy-pool", "0"], "(--lazy-pool) must be an odd number of tokens >= 1 (got 0)" },
        { ["needle", "--lengths", "200", "--prefill-prune", "lazyllm", "--lazy-window-reduce", "max"], "(--lazy-window-reduce max) needs --lazy-window of at least 2" },
        { ["needle", "--lengths", "200", "--prefill-prune", "lazyllm", "--lazy-window", "4", "--lazy-window-reduce", "sum"], "--lazy-window-reduce must be mean or max" },
        { ["needle", "--lengths", "200", "--prefill-prune", "lazyllm", "--lazy-score", "above"], "--lazy-score must be below or same" },
        { ["run", "--prompt", "hi", "--max-tokens", "2", "--kv-policy", "h2o", "--kv-budget", "100000"], "--kv-budget 100000 is larger than the context of 512 tokens" },
        { ["run", "--prompt", "hi", "--max-tokens", "2", "--kv-policy", "h2o", "--kv-budget", "0"], "--kv-budget must be at least 1" },
        { ["run", "--prompt", "hi", "--max-tokens", "2", "--kv-policy", "lru", "--kv-budget", "8"], "--kv-policy must be one of" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_input_is_one_clear_line_and_exit_1(string[] args, string message)
    {
        var r = PareCli.Run([args[0], ReferenceModels.Require(ReferenceModels.PareRef), .. args[1..]]);
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("pare: error: ", r.Stderr);
        Assert.Contains(message, r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.Equal("", r.Stdout);
    }
}
