using Pare.Tensors;

namespace Pare.LongContext;

/// <summary>The long-context retrieval tasks (needle threading, Roberts et al. 2025, plus passkey retrieval).</summary>
public enum NeedleTask
{
    /// <summary>A five-digit pass key hidden in real text; answer: the key.</summary>
    Passkey,
    /// <summary>A key-value haystack; answer: the value of one given key.</summary>
    Single,
    /// <summary>A key-value haystack; answer: the values of several given keys, in the order asked.</summary>
    Multi,
    /// <summary>A key-value haystack; answer: the values of all keys marked with a '*', in order of appearance.</summary>
    Conditional,
    /// <summary>Each needle's value is the next needle's key; answer: the value at the end of the chain from a given key.</summary>
    Threading,
    /// <summary>Several threads at once; answer: the end value of each, in the order asked.</summary>
    MultiThread,
}

/// <summary>
/// One task instance: the prompt's token ids (haystack + question, no BOS), the gold answer values (one per needle asked
/// for), the answer as the model should continue the prompt (for training), and where the needles sit.
/// </summary>
/// <param name="Prompt">Token ids of haystack and question; the answer follows directly.</param>
/// <param name="Gold">The values the answer must contain, in order (one for passkey, single and threading).</param>
/// <param name="AnswerText">The continuation that answers correctly (e.g. <c>4821"</c> or <c> 48213.</c>).</param>
/// <param name="NeedlePositions">Token index in <see cref="Prompt"/> where each needle (or the thread's first link) starts.</param>
/// <param name="HaystackStart">Token index where the haystack (filler or key-value pairs) starts.</param>
/// <param name="HaystackLength">Tokens of the haystack, needles included.</param>
public sealed record NeedleSample(NeedleTask Task, int[] Prompt, string[] Gold, string AnswerText, int[] NeedlePositions,
    int HaystackStart, int HaystackLength)
{
    /// <summary>Training only: spans of <see cref="Prompt"/> that are answers already written into it (a single-needle
    /// episode's follow-up questions and their answers), so the trainer can weight them like <see cref="AnswerText"/>.</summary>
    public IReadOnlyList<(int Start, int Length)> EmbeddedAnswers { get; init; } = [];

    /// <summary>Relative position of the first needle inside the haystack, 0 = start, 1 = end.</summary>
    public double Depth => HaystackLength <= 1 ? 0 : (double)(NeedlePositions[0] - HaystackStart) / (HaystackLength - 1);
}

/// <summary>Names of the tasks as the CLI spells them.</summary>
public static class NeedleTasks
{
    public static readonly IReadOnlyList<NeedleTask> All = Enum.GetValues<NeedleTask>();

    /// <summary>One instance of <paramref name="task"/> with a prompt of at most <paramref name="length"/> tokens (passkey: exactly).</summary>
    public static NeedleSample Build(NeedleTask task, SplitMix64 rng, TokenText text, Filler filler, int length, double depth) => task switch
    {
        NeedleTask.Passkey => Passkey.Build(rng, text, filler, length, depth),
        NeedleTask.Single => KeyValueHaystack.Single(rng, text, length, depth),
        NeedleTask.Multi => KeyValueHaystack.Multi(rng, text, length, depth),
        NeedleTask.Conditional => KeyValueHaystack.Conditional(rng, text, length, depth),
        NeedleTask.Threading => Threading.Single(rng, text, length, depth),
        NeedleTask.MultiThread => Threading.Multi(rng, text, length, depth),
        _ => throw new ArgumentOutOfRangeException(nameof(task)),
    };

    public static string Name(NeedleTask t) => t == NeedleTask.MultiThread ? "multi-thread" : t.ToString().ToLowerInvariant();

    public static NeedleTask Parse(string name)
    {
        foreach (var t in All)
            if (Name(t) == name.Trim().ToLowerInvariant()) return t;
        throw new PareException($"unknown needle task '{name}' (expected {string.Join(", ", All.Select(Name))})");
    }
}
