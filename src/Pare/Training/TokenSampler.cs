using Pare.LongContext;
using Pare.Tensors;

namespace Pare.Training;

/// <summary>
/// The training data order: each sequence is a window of seqLen + 1 consecutive tokens of the tokenized train split at an
/// offset drawn uniformly by a <see cref="SplitMix64"/>; inputs are its first seqLen tokens and targets the last seqLen.
/// The generator's state is all there is to save for an exact resume. With a <see cref="LongContextMix"/>, each window is
/// first drawn synthetic or not, and a synthetic one is generated from a seed drawn from the same generator.
/// </summary>
public sealed class TokenSampler(int[] tokens, int seqLen, ulong seed, LongContextMix? mix = null)
{
    public SplitMix64 Rng { get; } = new(seed);

    /// <summary>Whether <see cref="Next"/> gives per-target loss weights (a mix that weights its answers).</summary>
    public bool Weighted => mix is { Options.AnswerWeight: not 1.0 };

    /// <summary>Fills (sequences · seqLen) inputs and targets, and, when <see cref="Weighted"/>, one loss weight per target.</summary>
    public void Next(Span<int> inputs, Span<int> targets, int sequences, Span<float> weights = default)
    {
        if (Weighted && weights.Length != targets.Length) throw new ArgumentException("a weighted sampler needs one weight per target");
        if (Weighted) weights.Fill(1f);
        if (tokens.Length < seqLen + 1) throw new PareException($"the training text has {tokens.Length} tokens, fewer than one window of {seqLen + 1}");
        for (int b = 0; b < sequences; b++)
        {
            if (mix != null && mix.IsSynthetic(Rng.NextDouble()))
            {
                var w = mix.Window(Rng.NextULong(), seqLen + 1, out var tokenWeights);
                w.AsSpan(0, seqLen).CopyTo(inputs.Slice(b * seqLen, seqLen));
                w.AsSpan(1, seqLen).CopyTo(targets.Slice(b * seqLen, seqLen));
                // Target t is window token t + 1: its weight is that token's.
                if (Weighted) tokenWeights.AsSpan(1, seqLen).CopyTo(weights.Slice(b * seqLen, seqLen));
                continue;
            }
            int start = Rng.NextInt(tokens.Length - seqLen);
            tokens.AsSpan(start, seqLen).CopyTo(inputs.Slice(b * seqLen, seqLen));
            tokens.AsSpan(start + 1, seqLen).CopyTo(targets.Slice(b * seqLen, seqLen));
        }
    }

    /// <summary>Fixed validation windows: <paramref name="count"/> windows spread evenly over the tokens (no randomness).</summary>
    public static (int[] Inputs, int[] Targets) Fixed(int[] tokens, int seqLen, int count)
    {
        int windows = Math.Min(count, Math.Max(0, (tokens.Length - 1) / seqLen));
        if (windows == 0) throw new PareException($"the validation text has {tokens.Length} tokens, fewer than one window of {seqLen + 1}");
        var inputs = new int[windows * seqLen];
        var targets = new int[windows * seqLen];
        long stride = (tokens.Length - 1 - seqLen) / Math.Max(1, windows - 1);
        for (int b = 0; b < windows; b++)
        {
            int start = (int)Math.Min(b * stride, tokens.Length - 1 - seqLen);
            tokens.AsSpan(start, seqLen).CopyTo(inputs.AsSpan(b * seqLen, seqLen));
            tokens.AsSpan(start + 1, seqLen).CopyTo(targets.AsSpan(b * seqLen, seqLen));
        }
        return (inputs, targets);
    }
}
