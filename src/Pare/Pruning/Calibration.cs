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
}
