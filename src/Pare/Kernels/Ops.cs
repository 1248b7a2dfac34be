using Pare.Models;

namespace Pare.Kernels;

/// <summary>Element-wise and normalization kernels of the transformer.</summary>
public static class Ops
{
    /// <summary>y = x / sqrt(mean(x^2) + eps) * weight.</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y) => OpsReference.RmsNorm(x, weight, eps, y);
    /// <summary>In-place softmax, subtracting the maximum first.</summary>
    public static void Softmax(Span<float> x) => OpsReference.Softmax(x);
    /// <summary>gate = silu(gate) * up.</summary>
    public static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up) => OpsReference.SwiGlu(gate, up);
    /// <summary>Rotates each of <paramref name="heads"/> heads of width headDim (first ropeDim dims) at position pos.</summary>
    public static void Rope(Span<float> v, int heads, int headDim, int ropeDim, int pos, float theta, RopeLayout layout) =>
        OpsReference.Rope(v, heads, headDim, ropeDim, pos, theta, layout);
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b) => OpsReference.Dot(a, b);
    /// <summary>y += a * x.</summary>
    public static void Axpy(float a, ReadOnlySpan<float> x, Span<float> y) => OpsReference.Axpy(a, x, y);
}

/// <summary>Scalar references, written for clarity (double accumulation).</summary>
public static class OpsReference
{
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y)
    {
        double ss = 0;
        for (int i = 0; i < x.Length; i++) ss += (double)x[i] * x[i];
        float scale = (float)(1.0 / Math.Sqrt(ss / x.Length + eps));
        for (int i = 0; i < x.Length; i++) y[i] = x[i] * scale * weight[i];
    }

    public static void Softmax(Span<float> x)
    {
        float max = float.NegativeInfinity;
        foreach (var v in x) max = Math.Max(max, v);
        double sum = 0;
        for (int i = 0; i < x.Length; i++) { x[i] = MathF.Exp(x[i] - max); sum += x[i]; }
        for (int i = 0; i < x.Length; i++) x[i] = (float)(x[i] / sum);
    }

    public static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            float g = gate[i];
            gate[i] = g / (1f + MathF.Exp(-g)) * up[i];
        }
    }

    public static void Rope(Span<float> v, int heads, int headDim, int ropeDim, int pos, float theta, RopeLayout layout)
    {
        for (int h = 0; h < heads; h++)
        {
            var head = v.Slice(h * headDim, headDim);
            for (int i = 0; i < ropeDim / 2; i++)
            {
                double freq = Math.Pow(theta, -2.0 * i / ropeDim);
                double angle = pos * freq;
                float cos = (float)Math.Cos(angle), sin = (float)Math.Sin(angle);
                int a = layout == RopeLayout.Interleaved ? 2 * i : i;
                int b = layout == RopeLayout.Interleaved ? 2 * i + 1 : i + ropeDim / 2;
                float x0 = head[a], x1 = head[b];
                head[a] = x0 * cos - x1 * sin;
                head[b] = x0 * sin + x1 * cos;
            }
        }
    }

    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += (double)a[i] * b[i];
        return (float)s;
    }

    public static void Axpy(float a, ReadOnlySpan<float> x, Span<float> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] += a * x[i];
    }
}
