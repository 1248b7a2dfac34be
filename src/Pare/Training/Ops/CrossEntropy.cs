using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Pare.Training.Ops;

/// <summary>
/// Softmax cross-entropy of next-token logits: loss_t = logsumexp(z_t) − z_t[target_t] (in double).
/// Backward (of the mean over <c>normalizer</c> predictions): dz = (softmax(z) − onehot(target)) / normalizer.
/// With per-position weights w_t the loss is Σ_t w_t · loss_t and each row's gradient is scaled by w_t.
/// </summary>
public static class CrossEntropy
{
    /// <summary>Returns Σ_t loss_t and, when <paramref name="gradScale"/> is not 0, overwrites the logits with their gradient times gradScale.</summary>
    /// <param name="logits">(n, vocab), overwritten by dz when a gradient is asked for</param>
    /// <param name="weights">empty (every position weighs 1) or one weight >= 0 per position</param>
    public static double ForwardBackward(Span<float> logits, ReadOnlySpan<int> targets, int vocab, float gradScale, int threads,
        ReadOnlySpan<float> weights = default)
    {
        int n = targets.Length;
        if (!weights.IsEmpty && weights.Length != n) throw new ArgumentException($"{weights.Length} weights for {n} positions");
        var losses = new double[n];
        unsafe
        {
            fixed (float* pz = logits)
            fixed (int* pt = targets)
            fixed (float* pw = weights)
            {
                nint z = (nint)pz, tg = (nint)pt, wt = (nint)pw;
                bool weighted = !weights.IsEmpty;
                FixedParallel.For(n, threads, (a, b) =>
                {
                    for (int t = a; t < b; t++)
                    {
                        var row = new Span<float>((float*)z + (long)t * vocab, vocab);
                        float w = weighted ? ((float*)wt)[t] : 1f;
                        losses[t] = w * Row(row, ((int*)tg)[t], gradScale * w);
                        // A zero-weight row still holds logits, which the backward pass would read as a gradient.
                        if (gradScale != 0 && w == 0) row.Clear();
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
        // Σ exp(z − max) in float lanes (each term ≤ 1), the lanes summed in double: log-sum-exp to ~1e-7 relative.
        ref float p = ref MemoryMarshal.GetReference(z);
        int n = z.Length, i = 0;
        double s = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var vmax = Vector512.Create(max);
            var acc = Vector512<float>.Zero;
            for (; i + 16 <= n; i += 16) acc += Vector512.Exp(Vector512.LoadUnsafe(ref p, (nuint)i) - vmax);
            for (int l = 0; l < 16; l++) s += acc[l];
        }
        for (; i < n; i++) s += Math.Exp(z[i] - max);
        double lse = max + Math.Log(s);
        double loss = lse - z[target];
        if (gradScale != 0)
        {
            float flse = (float)lse;
            i = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                var vl = Vector512.Create(flse);
                var vs = Vector512.Create(gradScale);
                for (; i + 16 <= n; i += 16) (Vector512.Exp(Vector512.LoadUnsafe(ref p, (nuint)i) - vl) * vs).StoreUnsafe(ref p, (nuint)i);
            }
            for (; i < n; i++) z[i] = MathF.Exp(z[i] - flse) * gradScale;
            z[target] -= gradScale;
        }
        return loss;
    }
}
