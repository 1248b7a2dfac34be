namespace Pare.Training.Ops;

/// <summary>
/// Softmax cross-entropy of next-token logits: loss_t = logsumexp(z_t) − z_t[target_t] (in double).
/// Backward (of the mean over <c>normalizer</c> predictions): dz = (softmax(z) − onehot(target)) / normalizer.
/// </summary>
public static class CrossEntropy
{
    /// <summary>Returns Σ_t loss_t and, when <paramref name="gradScale"/> is not 0, overwrites the logits with their gradient times gradScale.</summary>
    /// <param name="logits">(n, vocab), overwritten by dz when a gradient is asked for</param>
    public static double ForwardBackward(Span<float> logits, ReadOnlySpan<int> targets, int vocab, float gradScale, int threads)
    {
        int n = targets.Length;
        var losses = new double[n];
        unsafe
        {
            fixed (float* pz = logits)
            fixed (int* pt = targets)
            {
                nint z = (nint)pz, tg = (nint)pt;
                FixedParallel.For(n, threads, (a, b) =>
                {
                    for (int t = a; t < b; t++)
                    {
                        var row = new Span<float>((float*)z + (long)t * vocab, vocab);
                        losses[t] = Row(row, ((int*)tg)[t], gradScale);
                    }
                });
            }
        }
        double sum = 0;
        foreach (double l in losses) sum += l;
        return sum;
    }

    static double Row(Span<float> z, int target, float gradScale)
    {
        float max = float.NegativeInfinity;
        foreach (float v in z) max = MathF.Max(max, v);
        double s = 0;
        for (int i = 0; i < z.Length; i++) s += Math.Exp(z[i] - max);
        double lse = max + Math.Log(s);
        double loss = lse - z[target];
        if (gradScale != 0)
        {
            for (int i = 0; i < z.Length; i++) z[i] = (float)(Math.Exp(z[i] - lse) * gradScale);
            z[target] -= gradScale;
        }
        return loss;
    }
}
