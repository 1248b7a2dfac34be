using Pare.Models;
using Pare.Tensors;

namespace Pare.LongContext;

/// <summary>Settings of a needle run (<c>pare needle</c>).</summary>
public sealed record NeedleOptions
{
    public NeedleTask Task { get; init; } = NeedleTask.Passkey;
    /// <summary>Prompt lengths in tokens (haystack + question); each plus <see cref="NeedleHarness.AnswerTokens"/> must fit twice the
    /// model's context (<see cref="NeedleHarness.MaxContextFactor"/>: beyond the trained context is the length-extrapolation test).</summary>
    public IReadOnlyList<int> Lengths { get; init; } = [512, 1024, 2048 - NeedleHarness.AnswerTokens];
    /// <summary>Needle depths, 0 = start of the haystack, 1 = end.</summary>
    public IReadOnlyList<double> Depths { get; init; } = [0, 0.25, 0.5, 0.75, 1];
    /// <summary>Trials per (length, depth) cell.</summary>
    public int Trials { get; init; } = 10;
    /// <summary>Seed of the haystacks; each cell's trials are a function of (seed, task, length, depth, trial) only.</summary>
    public ulong Seed { get; init; } = 1;
    /// <summary>Kernel threads of the session.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>KV cache value type (default F32, exact).</summary>
    public Pare.Kernels.KvValueType KvType { get; init; } = Pare.Kernels.KvValueType.F32;
    /// <summary>KV policy name (<see cref="KvPolicies.KvPolicy.Names"/>); full = the whole cache.</summary>
    public string KvPolicy { get; init; } = "full";
    /// <summary>Positions each head attends to under <see cref="KvPolicy"/> (1 .. the session's context, the longest length + answer).</summary>
    public int? KvBudget { get; init; }
    /// <summary>TokenSelect's RoPE over the gathered sequence (<c>--kv-renumber on|off</c>); null = the policy's default (on for tokenselect).</summary>
    public bool? KvRenumber { get; init; }
    /// <summary>TokenSelect's selection scores (<c>--kv-scores int8|int4|f32</c>); null = the policy's default (int4).</summary>
    public string? KvScores { get; init; }
    /// <summary>TokenSelect's selection cache threshold (<c>--kv-selection-cache</c>, cosine in (0, 1]); null = off (the default).</summary>
    public double? KvSelectionCache { get; init; }
    /// <summary>Prefill the prompt in chunks of this many tokens (null = one chunk): under a KV policy each chunk after the first
    /// then attends to the policy's selection of what came before (with TokenSelect's re-numbering, no token sees a position
    /// past budget + chunk: the reference prefills in chunks of 512 too). The prompt's last token is always its own step.</summary>
    public int? PrefillChunk { get; init; }
    /// <summary>Prefill pruning: null = full prefill; LazyLLM settings = <see cref="LazyLlm.Prefill"/> (deferred tokens revived before the second token).</summary>
    public LazyLlmOptions? Lazy { get; init; }
    /// <summary>With <see cref="Lazy"/>: also time a full prefill of every trial's prompt in the same process, alternating which
    /// runs first (<see cref="NeedleTrial.FullPrefillSeconds"/>), so the time-to-first-token ratio is measured side by side.</summary>
    public bool CompareFullPrefill { get; init; }
}

/// <summary>One (length, depth) cell: mean exact-match score over its trials, and the needles' measured mean depth.</summary>
public sealed record NeedleCell(int Length, double Depth, int Trials, double Accuracy, double MeasuredDepth);

/// <summary>One trial as run: what was asked, what came back, its score.</summary>
public sealed record NeedleTrial(int Length, double Depth, int Trial, string[] Gold, string Answer, double Score, double PrefillSeconds = 0,
    double FullPrefillSeconds = 0);

/// <summary>
/// Runs a <see cref="NeedleTask"/> on a model with its full KV cache through the public session API: for each length,
/// depth and trial it builds a haystack (<see cref="NeedleTasks.Build"/>), prefills it, decodes greedily until a newline
/// or <see cref="AnswerTokens"/> tokens, and scores the answer by exact match (<see cref="NeedleScoring"/>).
/// </summary>
public static class NeedleHarness
{
    /// <summary>Most tokens generated per answer (the longest gold answer, three quoted values, is about 14 tokens).</summary>
    public const int AnswerTokens = 24;

    /// <summary>Longest session, as a multiple of the model's context length: up to 2x measures length extrapolation (TokenSelect
    /// re-numbers positions; <c>full</c> then rotates past the trained range). The session's KV cache is sized to the longest
    /// prompt, so memory, not RoPE, is what a longer run would cost; 2x is the protocol.</summary>
    public const int MaxContextFactor = 2;

    /// <summary>Checks the options against the model; throws a one-line <see cref="PareException"/> on bad input.</summary>
    public static void Validate(NeedleOptions o, int contextLength)
    {
        if (!Enum.IsDefined(o.Task)) throw new PareException($"unknown needle task {o.Task}");
        if (o.Trials < 1) throw new PareException($"trials must be at least 1 (got {o.Trials})");
        if (o.PrefillChunk is < 1) throw new PareException($"--prefill-chunk must be at least 1 (got {o.PrefillChunk})");
        if (o.PrefillChunk != null && o.Lazy != null) throw new PareException("--prefill-chunk and --prefill-prune lazyllm do not combine (LazyLLM prefills the prompt in one pass)");
        if (o.Lengths.Count == 0 || o.Depths.Count == 0) throw new PareException("give at least one length and one depth");
        foreach (int l in o.Lengths)
        {
            if (l < 64) throw new PareException($"length {l} is too short (at least 64 tokens)");
            if (l + AnswerTokens > MaxContextFactor * contextLength)
                throw new PareException($"length {l} + {AnswerTokens} answer tokens exceeds {MaxContextFactor}x the model's context of {contextLength} tokens ({MaxContextFactor * contextLength}, the longest length extrapolation pare needle measures)");
        }
        foreach (double d in o.Depths)
            if (!(d >= 0 && d <= 1)) throw new PareException($"depth {d} is outside 0..1");
    }

    /// <summary>The haystack of one trial (deterministic in the options' seed and the cell).</summary>
    public static NeedleSample Sample(NeedleOptions o, TokenText text, Filler filler, int length, double depth, int trial)
    {
        ulong h = o.Seed;
        foreach (ulong x in new[] { (ulong)o.Task, (ulong)length, BitConverter.DoubleToUInt64Bits(depth), (ulong)trial })
            h = new SplitMix64(h ^ x).NextULong();
        return NeedleTasks.Build(o.Task, new SplitMix64(h), text, filler, length, depth);
    }

    public static (IReadOnlyList<NeedleCell> Cells, IReadOnlyList<NeedleTrial> Trials) Run(LlamaModel model, Filler filler, TokenText text,
        NeedleOptions o, IProgress<double>? progress = null, CancellationToken ct = default) => Run(model, filler, text, o, out _, progress, ct);

    /// <summary>As <see cref="Run(LlamaModel, Filler, TokenText, NeedleOptions, IProgress{double}?, CancellationToken)"/>;
    /// <paramref name="policy"/> = the KV policy every trial ran under (null for the full cache), for its counters.</summary>
    public static (IReadOnlyList<NeedleCell> Cells, IReadOnlyList<NeedleTrial> Trials) Run(LlamaModel model, Filler filler, TokenText text,
        NeedleOptions o, out Pare.Models.Kv.IKvPolicy? policy, IProgress<double>? progress = null, CancellationToken ct = default)
    {
        Validate(o, model.Config.ContextLength);
        int ctx = o.Lengths.Max() + AnswerTokens;
        policy = o.KvPolicy == "full" && o.KvBudget == null ? null : KvPolicies.KvPolicy.Create(o.KvPolicy, o.KvBudget, model.Config, ctx, o.KvRenumber, o.KvScores, o.KvSelectionCache);
        var session = model.CreateSession(new SessionOptions { ContextLength = ctx, Threads = o.Threads, KvType = o.KvType, KvPolicy = policy });
        var cells = new List<NeedleCell>();
        var trials = new List<NeedleTrial>();
        int done = 0, total = o.Lengths.Count * o.Depths.Count * o.Trials;
        foreach (int length in o.Lengths)
            foreach (double depth in o.Depths)
            {
                double score = 0, measured = 0;
                for (int t = 0; t < o.Trials; t++)
                {
                    ct.ThrowIfCancellationRequested();
                    var s = Sample(o, text, filler, length, depth, t);
                    bool compare = o.Lazy != null && o.CompareFullPrefill;
                    double fullS = compare && t % 2 == 0 ? FullPrefill(session, s.Prompt) : 0;   // even trials: full first
                    string answer = Answer(session, text, s.Prompt, ct, o.Lazy, out double prefillS, o.PrefillChunk);
                    if (compare && t % 2 == 1) fullS = FullPrefill(session, s.Prompt);
                    double sc = NeedleScoring.Score(o.Task, answer, s.Gold);
                    score += sc;
                    measured += s.Depth;
                    trials.Add(new NeedleTrial(length, depth, t, s.Gold, answer, sc, prefillS, fullS));
                    progress?.Report(++done / (double)total);
                }
                cells.Add(new NeedleCell(length, depth, o.Trials, score / o.Trials, measured / o.Trials));
            }
        return (cells, trials);
    }

    /// <summary>Seconds of a full prefill of <paramref name="prompt"/> from an empty cache (the baseline of LazyLLM's time to first token).</summary>
    static double FullPrefill(InferenceSession session, int[] prompt)
    {
        session.Reset();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        session.Forward(prompt);
        double seconds = sw.Elapsed.TotalSeconds;
        session.Reset();
        return seconds;
    }

    /// <summary>Greedy answer to a prompt from an empty cache: up to <see cref="AnswerTokens"/> tokens, stopping at a newline or EOS.</summary>
    public static string Answer(InferenceSession session, TokenText text, int[] prompt, CancellationToken ct = default) =>
        Answer(session, text, prompt, ct, null, out _);

    /// <summary>As <see cref="Answer(InferenceSession, TokenText, int[], CancellationToken)"/>, with optional LazyLLM prefill;
    /// <paramref name="prefillSeconds"/> = time to the first token's logits.</summary>
    public static string Answer(InferenceSession session, TokenText text, int[] prompt, CancellationToken ct, LazyLlmOptions? lazy, out double prefillSeconds,
        int? prefillChunk = null)
    {
        session.Reset();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        prefillSeconds = 0;
        // Under a KV policy the prompt's last token is a decode step, so the first answer token is read through the policy
        // too (a prefill chunk attends to itself in full).
        float[] logits;
        if (lazy != null)
        {
            var lp = LazyLlm.Prefill(session, prompt, lazy);
            logits = lp.Logits;
            prefillSeconds = sw.Elapsed.TotalSeconds;
            lp.Revive();
        }
        else if ((session.KvPolicy == null && prefillChunk == null) || prompt.Length < 2) logits = session.Forward(prompt);
        else
        {
            int chunk = prefillChunk ?? prompt.Length;
            for (int i = 0; i < prompt.Length - 1; i += chunk) session.Forward(prompt[i..Math.Min(i + chunk, prompt.Length - 1)]);
            logits = session.Forward(prompt[^1..]);
        }
        if (lazy == null) prefillSeconds = sw.Elapsed.TotalSeconds;
        var ids = new List<int>();
        for (int i = 0; i < AnswerTokens; i++)
        {
            ct.ThrowIfCancellationRequested();
            int next = ArgMax(logits);
            if (text.Tokenizer.EosId == next || text.Tokenizer.IsControl(next)) break;
            ids.Add(next);
            if (text.Decode([next]).Contains('\n')) break;
            if (i + 1 < AnswerTokens) logits = session.Forward([next]);
        }
        return text.Decode([.. ids]);
    }

    /// <summary>Index of the largest logit (the lowest index on ties).</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }
}
