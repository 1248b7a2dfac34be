using Pare.Models;
using Pare.Tokenizers;

namespace Pare.Pruning;

/// <summary>
/// Calibration windows as in the SparseGPT/Wanda protocol: <c>samples</c> sequences of <c>seqLen</c> tokens, each a
/// random window (fixed seed) of the calibration text tokenized once by the model's own tokenizer. Never calibrate on
/// the test split.
/// </summary>
public static class Calibration
{
    /// <summary>Windows drawn from <paramref name="text"/> (the training split, or any text file).</summary>
    public static int[][] FromText(ITokenizer? tokenizer, string text, int samples, int seqLen, int seed, string source = "calibration text")
    {
        if (tokenizer == null) throw new PareException("the model has no tokenizer, so calibration text cannot be tokenized");
        if (string.IsNullOrWhiteSpace(text)) throw new PareException($"{source} is empty");
        var ids = tokenizer.Encode(text, addSpecial: false);
        if (ids.Length <= seqLen)
            throw new PareException($"{source} has {ids.Length} tokens, not more than one calibration window of {seqLen}; use a longer text or --seqlen");
        var rng = new Random(seed);
        var windows = new int[samples][];
        for (int s = 0; s < samples; s++)
        {
            int start = rng.Next(0, ids.Length - seqLen); // as the reference loaders: randint(0, len - seqlen - 1)
            windows[s] = ids.AsSpan(start, seqLen).ToArray();
        }
        return windows;
    }

    /// <summary>Uniform random token windows: for random-weight test and benchmark models only.</summary>
    public static int[][] RandomTokens(int vocab, int samples, int seqLen, int seed)
    {
        var rng = new Random(seed);
        var windows = new int[samples][];
        for (int s = 0; s < samples; s++) windows[s] = [.. Enumerable.Range(0, seqLen).Select(_ => rng.Next(vocab))];
        return windows;
    }

    /// <summary>
    /// The calibration windows of a pruning run (every pruner's shared setup): from <paramref name="source"/>, or by
    /// default from the training split at <see cref="Pruner.DefaultTrainSplit"/>; checked to be of one non-zero length
    /// with every token in the vocabulary. With no source and no training split, <paramref name="required"/> methods
    /// fail with one line naming <paramref name="method"/>; others get no windows ("none").
    /// </summary>
    public static (int[][] Windows, string Description) Load(LlamaModel model, CalibrationSource? source, int samples, int seqLen, int seed,
        string method, bool required = true)
    {
        int vocab = model.Config.VocabSize;
        (int[][] windows, string desc) = source switch
        {
            CalibrationSource.TextFile t => File.Exists(t.Path)
                ? (FromText(model.Tokenizer, File.ReadAllText(t.Path), samples, seqLen, seed, t.Path), t.Path)
                : throw new PareException($"calibration file not found: {t.Path}"),
            CalibrationSource.RandomTokens => (RandomTokens(vocab, samples, seqLen, seed), "random tokens"),
            CalibrationSource.Windows win => (win.Tokens, "given windows"),
            _ when File.Exists(Pruner.DefaultTrainSplit) =>
                (FromText(model.Tokenizer, File.ReadAllText(Pruner.DefaultTrainSplit), samples, seqLen, seed, Pruner.DefaultTrainSplit), Pruner.DefaultTrainSplit),
            _ when required => throw new PareException($"{method} needs calibration text: pass --calib-file (a training-split text file) or run `pare data fetch` (training split at {Pruner.DefaultTrainSplit})"),
            _ => ([], "none"),
        };
        if (windows.Length == 0) return required ? throw new PareException("no calibration windows") : (windows, desc);
        int len = windows[0].Length;
        foreach (var win in windows)
        {
            if (win.Length != len || win.Length == 0) throw new PareException("calibration windows must all have the same, non-zero length");
            foreach (int t in win) if ((uint)t >= (uint)vocab) throw new PareException($"calibration token {t} is out of range");
        }
        return (windows, desc);
    }
}
