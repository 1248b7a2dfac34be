namespace Pare.Training;

/// <summary>
/// AdamW (Loshchilov &amp; Hutter 2019): Adam moments with bias correction, and weight decay applied to the weights directly
/// (decoupled), only on parameters marked <see cref="ParamInfo.Decay"/> (not on norm weights).
/// p ← p − lr · (m̂ / (sqrt(v̂) + eps) + wd · p).
/// </summary>
public sealed class AdamW(ParameterStore parameters, float beta1, float beta2, float eps, float weightDecay)
{
    /// <summary>First moments, same layout as the parameters.</summary>
    public float[] M { get; } = new float[parameters.Values.Length];
    /// <summary>Second moments.</summary>
    public float[] V { get; } = new float[parameters.Values.Length];
    /// <summary>Updates taken so far (for the bias correction).</summary>
    public long Steps { get; set; }

    public void Update(float lr, int threads)
    {
        Steps++;
        float bc1 = 1f - MathF.Pow(beta1, Steps), bc2 = 1f - MathF.Pow(beta2, Steps);
        foreach (var p in parameters.All)
        {
            float wd = p.Decay ? weightDecay : 0f;
            int off = (int)p.Offset, len = (int)p.Length;
            // Element-wise: any split over threads gives the same bits.
            FixedParallel.For(len, threads, (a, b) =>
            {
                var w = parameters.Values;
                var g = parameters.Grads;
                for (int i = off + a; i < off + b; i++)
                {
                    float gi = g[i];
                    float m = M[i] = beta1 * M[i] + (1 - beta1) * gi;
                    float v = V[i] = beta2 * V[i] + (1 - beta2) * gi * gi;
                    float mh = m / bc1, vh = v / bc2;
                    w[i] -= lr * (mh / (MathF.Sqrt(vh) + eps) + wd * w[i]);
                }
            });
        }
    }
}

/// <summary>Learning rate: linear warmup from 0 to max over the warmup steps, then cosine decay to min at the last step.</summary>
public static class LrSchedule
{
    public static float At(int step, int totalSteps, int warmup, float max, float min)
    {
        if (step < warmup) return max * (step + 1) / warmup;
        if (step >= totalSteps) return min;
        double progress = (double)(step - warmup) / Math.Max(1, totalSteps - warmup);
        return (float)(min + 0.5 * (max - min) * (1 + Math.Cos(Math.PI * progress)));
    }
}

/// <summary>Global-norm gradient clipping (Pascanu et al. 2013).</summary>
public static class GradClip
{
    /// <summary>The L2 norm of all gradients, summed in a fixed order in double.</summary>
    public static double Norm(float[] grads, int threads) =>
        Math.Sqrt(FixedParallel.Sum(grads.Length, threads, i => (double)grads[i] * grads[i]));

    /// <summary>Scales the gradients so their norm is at most <paramref name="maxNorm"/>; returns the norm before clipping.</summary>
    public static double Clip(float[] grads, float maxNorm, int threads)
    {
        double norm = Norm(grads, threads);
        if (maxNorm > 0 && norm > maxNorm)
        {
            float s = (float)(maxNorm / (norm + 1e-6));
            FixedParallel.For(grads.Length, threads, (a, b) => { for (int i = a; i < b; i++) grads[i] *= s; });
        }
        return norm;
    }
}
