using System.Numerics;

namespace Pare.Models.Bert;

/// <summary>The element-wise pieces of a BERT block: LayerNorm with bias and exact (erf) GELU.</summary>
public static class BertOps
{
    /// <summary>y = (x - mean) / sqrt(var + eps) * w + b over one row (population variance, as PyTorch).</summary>
    public static void LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> b, float eps, Span<float> y)
    {
        int n = x.Length;
        float mean = Sum(x) / n;
        float var = 0;
        int i = 0;
        if (Vector.IsHardwareAccelerated && n >= Vector<float>.Count)
        {
            var m = new Vector<float>(mean);
            var acc = Vector<float>.Zero;
            for (; i <= n - Vector<float>.Count; i += Vector<float>.Count)
            {
                var d = new Vector<float>(x[i..]) - m;
                acc += d * d;
            }
            var = Vector.Sum(acc);
        }
        for (; i < n; i++) { float d = x[i] - mean; var += d * d; }
        float inv = 1f / MathF.Sqrt(var / n + eps);
        for (int j = 0; j < n; j++) y[j] = (x[j] - mean) * inv * w[j] + b[j];
    }

    static float Sum(ReadOnlySpan<float> x)
    {
        int i = 0;
        float s = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<float>.Count)
        {
            var acc = Vector<float>.Zero;
            for (; i <= x.Length - Vector<float>.Count; i += Vector<float>.Count) acc += new Vector<float>(x[i..]);
            s = Vector.Sum(acc);
        }
        for (; i < x.Length; i++) s += x[i];
        return s;
    }

    /// <summary>In place: x = x · Φ(x) = 0.5 x (1 + erf(x / √2)), the GELU of BERT (not the tanh form).</summary>
    public static void Gelu(Span<float> x)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var half = new Vector<float>(0.5f);
            var invSqrt2 = new Vector<float>(0.70710678118654752f);
            for (; i <= x.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                var v = new Vector<float>(x[i..]);
                (half * v * (Vector<float>.One + Erf(v * invSqrt2))).CopyTo(x[i..]);
            }
        }
        for (; i < x.Length; i++)
        {
            float v = x[i];
            x[i] = 0.5f * v * (1f + Erf(v * 0.70710678118654752f));
        }
    }

    /// <summary><see cref="Erf(float)"/> on a vector: the same formula lane by lane.</summary>
    public static Vector<float> Erf(Vector<float> x)
    {
        var a = Vector.Abs(x);
        var t = Vector<float>.One / (Vector<float>.One + new Vector<float>(0.3275911f) * a);
        var poly = ((((new Vector<float>(1.061405429f) * t - new Vector<float>(1.453152027f)) * t + new Vector<float>(1.421413741f)) * t
            - new Vector<float>(0.284496736f)) * t + new Vector<float>(0.254829592f)) * t;
        var r = Vector<float>.One - poly * Vector.Exp(-(a * a));
        return Vector.ConditionalSelect(Vector.LessThan(x, Vector<float>.Zero), -r, r);
    }

    /// <summary>erf to about 5e-7 absolute (Abramowitz &amp; Stegun 7.1.26, 1.5e-7, evaluated in float), odd-symmetric.</summary>
    public static float Erf(float x)
    {
        float a = MathF.Abs(x);
        float t = 1f / (1f + 0.3275911f * a);
        float poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
        float r = 1f - poly * MathF.Exp(-a * a);
        return x < 0 ? -r : r;
    }
}

/// <summary>Slow, plainly correct versions of <see cref="BertOps"/> (double precision) that tests compare against.</summary>
public static class BertOpsReference
{
    public static void LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> b, float eps, Span<float> y)
    {
        double mean = 0;
        foreach (float v in x) mean += v;
        mean /= x.Length;
        double var = 0;
        foreach (float v in x) var += (v - mean) * (v - mean);
        var /= x.Length;
        for (int i = 0; i < x.Length; i++) y[i] = (float)((x[i] - mean) / Math.Sqrt(var + eps) * w[i] + b[i]);
    }

    public static void Gelu(Span<float> x)
    {
        for (int i = 0; i < x.Length; i++) x[i] = (float)(0.5 * x[i] * (1 + Erf(x[i] / Math.Sqrt(2))));
    }

    /// <summary>erf in double (the encoder GEMM's reference implementation).</summary>
    public static double Erf(double x) => Pare.Kernels.F32GemmReference.Erf(x);
}
