using Pare.Tensors;

namespace Pare.LongContext;

/// <summary>Training mixture of <see cref="LongContextMix"/> (the <c>long_context</c> block of a training config).</summary>
public sealed record LongContextMixOptions
{
    /// <summary>Share of training windows that are synthetic retrieval documents; the rest are plain corpus windows.</summary>
    public double Fraction { get; init; } = 0.5;
    /// <summary>Shortest synthetic episode in tokens; episode lengths are log-uniform between this and the window.</summary>
    public int MinEpisode { get; init; } = 128;
    /// <summary>Relative weights of the tasks among synthetic episodes.</summary>
    public double Passkey { get; init; } = 0.25;
    public double Single { get; init; } = 0.25;
    public double Multi { get; init; } = 0.15;
    public double Conditional { get; init; } = 0.1;
    public double Threading { get; init; } = 0.15;
    public double MultiThread { get; init; } = 0.1;
    /// <summary>Most extra questions a single-needle episode asks (and answers) about other pairs of its haystack: more
    /// supervised retrievals per window.</summary>
    public int MaxFollowUps { get; init; } = 6;
    /// <summary>Share of episodes that are copy episodes instead (a span of train text, a blank line, the same span
    /// again); 0 keeps the windows of configs written before it bit for bit.</summary>
    public double Repeat { get; init; } = 0;
    /// <summary>Share of copy episodes whose span is random train-split tokens (uniform over its distinct tokens) instead of running
    /// text: a language model cannot partly predict them, so the whole loss of the copy pushes towards looking back.</summary>
    public double ShuffledRepeat { get; init; } = 0;
    /// <summary>How many times a copy episode shows its span (2 = once and one copy): more copies give more tokens that only
    /// looking back predicts, per window.</summary>
    public int Copies { get; init; } = 2;
    /// <summary>Random (shuffled) spans draw from the this many most frequent tokens of the train split; 0 = from all its
    /// distinct tokens. A small sub-vocabulary of well-trained embeddings is the easy start of a copy curriculum.</summary>
    public int CopyVocab { get; init; } = 0;
    /// <summary>Share of needle episodes whose needle sits at an edge of the haystack (depth 0 or 1, half each) instead of
    /// a uniform depth. The harness's depths 0 and 1 are the first and last pair, which a uniform depth almost never
    /// supervises (stages 4f/4h: 0-50% there against 85-100% mid-haystack). 0 keeps older configs' windows bit for bit.</summary>
    public double EdgeDepth { get; init; } = 0;
    /// <summary>Share of episodes that fill the rest of the window instead of a log-uniform length: with log-uniform
    /// lengths from 768 only ~13% of 2048-token windows hold an episode longer than 1,800 tokens, so needles far back at
    /// the trained length are rarely supervised (stage 4i: single needle 0-40% at 2,024 tokens). 0 keeps older configs'
    /// windows bit for bit.</summary>
    public double FullWindow { get; init; } = 0;
    /// <summary>Loss weight of answer tokens (the values a needle episode asks for, follow-up answers included) relative to
    /// every other token's 1: a 2,048-token window supervises only a few dozen answer tokens, ~1% of its loss, so the
    /// retrieval signal is small beside the language-model and haystack tokens. 1 = unweighted (older configs' loss).</summary>
    public double AnswerWeight { get; init; } = 1;

    public void Validate(string source)
    {
        if (Fraction is < 0 or > 1) throw new PareException($"{source}: long_context.fraction must be in 0..1");
        if (MinEpisode < 128) throw new PareException($"{source}: long_context.min_episode must be at least 128");
        double[] w = [Passkey, Single, Multi, Conditional, Threading, MultiThread];
        if (w.Any(x => x < 0) || w.Sum() <= 0) throw new PareException($"{source}: long_context task weights must be >= 0 with a positive sum");
        if (MaxFollowUps < 0) throw new PareException($"{source}: long_context.max_follow_ups must be >= 0");
        if (Repeat is < 0 or > 1) throw new PareException($"{source}: long_context.repeat must be in 0..1");
        if (ShuffledRepeat is < 0 or > 1) throw new PareException($"{source}: long_context.shuffled_repeat must be in 0..1");
        if (Copies is < 2 or > 16) throw new PareException($"{source}: long_context.copies must be in 2..16");
        if (CopyVocab < 0) throw new PareException($"{source}: long_context.copy_vocab must be >= 0 (0 = all tokens)");
        if (EdgeDepth is < 0 or > 1) throw new PareException($"{source}: long_context.edge_depth must be in 0..1");
        if (FullWindow is < 0 or > 1) throw new PareException($"{source}: long_context.full_window must be in 0..1");
        if (AnswerWeight is < 1 or > 1000 || double.IsNaN(AnswerWeight)) throw new PareException($"{source}: long_context.answer_weight must be in 1..1000");
    }
}

/// <summary>
/// Training windows for long-context retrieval: with probability <see cref="LongContextMixOptions.Fraction"/> a window
/// is a sequence of synthetic episodes (one of the <see cref="NeedleTask"/> tasks, answered, episodes separated by a blank
/// line, filler from the train split), otherwise a plain window of the train split. Each window is a pure function of
/// one seed, so the trainer's sampler state stays a single RNG state (exact resume).
/// </summary>
public sealed class LongContextMix
{
    readonly TokenText _text;
    readonly Filler _filler;
    readonly LongContextMixOptions _o;
    readonly double[] _cumulative;
    readonly int[] _separator;

    public LongContextMix(int[] corpusTokens, TokenText text, LongContextMixOptions options)
    {
        options.Validate("long_context");
        _text = text;
        _filler = new Filler(corpusTokens, text);
        _o = options;
        double[] w = [options.Passkey, options.Single, options.Multi, options.Conditional, options.Threading, options.MultiThread];
        _cumulative = new double[w.Length];
        double sum = w.Sum(), acc = 0;
        for (int i = 0; i < w.Length; i++) _cumulative[i] = (acc += w[i]) / sum;
        _separator = text.Encode("\n\n");
        // Every task must fit the shortest episode with this tokenizer (a byte-level one needs far more tokens per key).
        foreach (var task in NeedleTasks.All)
            for (ulong seed = 0; seed < 8; seed++)
                try { Episode(new SplitMix64(seed), options.MinEpisode - 16, task); }
            catch (PareException e) { throw new PareException($"long_context.min_episode {options.MinEpisode} is too short for this tokenizer: {e.Message}"); }
    }

    public LongContextMixOptions Options => _o;

    /// <summary>Whether the window drawn with this uniform number is synthetic.</summary>
    public bool IsSynthetic(double u) => u < _o.Fraction;

    /// <summary>A synthetic window of exactly <paramref name="length"/> tokens from <paramref name="seed"/>.</summary>
    public int[] Window(ulong seed, int length) => Window(seed, length, out _);

    /// <summary>A synthetic window and its per-token loss weights (null when <see cref="LongContextMixOptions.AnswerWeight"/>
    /// is 1): answer tokens weigh AnswerWeight, the others 1.</summary>
    public int[] Window(ulong seed, int length, out float[]? weights)
    {
        var rng = new SplitMix64(seed);
        var ids = new List<int>(length + 64);
        var answers = _o.AnswerWeight != 1 ? new List<(int Start, int Length)>() : null;
        while (ids.Count < length)
        {
            int remaining = length - ids.Count;
            if (remaining < _o.MinEpisode)
            {
                ids.AddRange(_filler.Take(rng, remaining));
                break;
            }
            int max = Math.Max(_o.MinEpisode, remaining);
            int episode = (int)Math.Round(_o.MinEpisode * Math.Pow((double)max / _o.MinEpisode, rng.NextDouble()));
            // The extra draw happens only when full windows are on: 0 keeps older configs' windows.
            if (_o.FullWindow > 0 && rng.NextDouble() < _o.FullWindow) episode = remaining;
            if (_o.Repeat > 0 && rng.NextDouble() < _o.Repeat)
            {
                ids.AddRange(CopyEpisode(rng, episode));
                continue;
            }
            // Leave room for the answer and the separator; the window is cut to length at the end anyway.
            var sample = Episode(rng, Math.Max(_o.MinEpisode - 16, episode - 16));
            foreach (var (start, count) in sample.EmbeddedAnswers) answers?.Add((ids.Count + start, count));
            ids.AddRange(sample.Prompt);
            if (sample.AnswerText.Length > 0)
            {
                var answer = _text.Encode(sample.AnswerText);
                answers?.Add((ids.Count, answer.Length));
                ids.AddRange(answer);
            }
            ids.AddRange(_separator);
        }
        weights = null;
        if (answers != null)
        {
            weights = new float[length];
            Array.Fill(weights, 1f);
            foreach (var (start, count) in answers)
                for (int i = start; i < Math.Min(length, start + count); i++) weights[i] = (float)_o.AnswerWeight;
        }
        return [.. ids.Take(length)];
    }

    /// <summary>
    /// A span of train text, a blank line, the same span again: every token of the second copy is predictable only by
    /// looking back (an induction head), the mechanism every retrieval task needs. The needle episodes alone supervise a
    /// few answer tokens per question, which did not make pare-long copy within 1.2 M tokens.
    /// </summary>
    int[] CopyEpisode(SplitMix64 rng, int length)
    {
        int copies = _o.Copies;
        int half = Math.Max(8, (length - copies * _separator.Length) / copies);
        // The draw for the kind of span happens only when shuffled spans are on: 0 keeps older configs' windows.
        var span = _o.ShuffledRepeat > 0 && rng.NextDouble() < _o.ShuffledRepeat ? _filler.Shuffled(rng, half, _o.CopyVocab) : _filler.Take(rng, half);
        var episode = new List<int>(copies * (half + _separator.Length));
        for (int c = 0; c < copies; c++) { episode.AddRange(span); episode.AddRange(_separator); }
        return [.. episode];
    }

    NeedleSample Episode(SplitMix64 rng, int length)
    {
        double u = rng.NextDouble();
        return Episode(rng, length, (NeedleTask)Math.Max(0, Array.FindIndex(_cumulative, c => u < c)));
    }

    /// <summary>One training episode of <paramref name="task"/>, with the task's size (needles, hops) drawn at random.</summary>
    NeedleSample Episode(SplitMix64 rng, int length, NeedleTask task)
    {
        double depth = rng.NextDouble();
        // The extra draws happen only when edges are on: 0 keeps older configs' windows.
        if (_o.EdgeDepth > 0 && rng.NextDouble() < _o.EdgeDepth) depth = rng.NextDouble() < 0.5 ? 0 : 1;
        return task switch
        {
            NeedleTask.Passkey => Passkey.Build(rng, _text, _filler, length, depth),
            NeedleTask.Single => KeyValueHaystack.Single(rng, _text, length, depth, followUps: rng.NextInt(_o.MaxFollowUps + 1)),
            NeedleTask.Multi => KeyValueHaystack.Multi(rng, _text, length, depth, needles: 2 + rng.NextInt(3)),
            NeedleTask.Conditional => KeyValueHaystack.Conditional(rng, _text, length, depth, needles: 1 + rng.NextInt(4)),
            NeedleTask.Threading => Threading.Single(rng, _text, length, depth, hops: 1 + rng.NextInt(4)),
            _ => Threading.Multi(rng, _text, length, depth, threads: 2, hops: 1 + rng.NextInt(3)),
        };
    }
}
