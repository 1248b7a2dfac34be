namespace Pare.Training.Ops;

/// <summary>
/// RMSNorm (Zhang &amp; Sennrich 2019): y = x · r · w with r = 1 / sqrt(Σx² / D + eps), row by row; D = d, or the
/// original width of a SliceGPT model whose rows were sliced to d (<c>normWidth</c>).
/// Backward: dw += Σ_rows dy ⊙ x · r;  dx += r · (dy ⊙ w) − x · r³ / D · Σ_i (dy ⊙ w ⊙ x)_i.
/// </summary>
public static class RmsNorm
{
    /// <param name="x">(n, d)</param><param name="w">(d)</param>
    /// <param name="y">(n, d) output</param><param name="rstd">(n) output: r of each row, kept for the backward pass</param>
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> w, float eps, int n, int d, Span<float> y, Span<float> rstd, int normWidth = 0)
    {
        double width = normWidth > 0 ? normWidth : d;
        for (int t = 0; t < n; t++)
        {
            var xr = x.Slice(t * d, d);
            var yr = y.Slice(t * d, d);
            double ss = 0;
            for (int i = 0; i < d; i++) ss += (double)xr[i] * xr[i];
            float r = (float)(1.0 / Math.Sqrt(ss / width + eps));
            rstd[t] = r;
            for (int i = 0; i < d; i++) yr[i] = xr[i] * r * w[i];
        }
    }

    /// <summary>Adds the gradient to <paramref name="dx"/> (it usually already holds the residual stream's gradient) and to <paramref name="dw"/>.</summary>
    public static void Backward(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> rstd, int n, int d,
        Span<float> dx, Span<float> dw, int normWidth = 0)
    {
        double width = normWidth > 0 ? normWidth : d;
        for (int t = 0; t < n; t++)
        {
            var dyr = dy.Slice(t * d, d);
            var xr = x.Slice(t * d, d);
            var dxr = dx.Slice(t * d, d);
            float r = rstd[t];
            double dot = 0;
            for (int i = 0; i < d; i++) dot += (double)dyr[i] * w[i] * xr[i];
            float c = (float)(dot * r * r * r / width);
            for (int i = 0; i < d; i++)
            {
                dxr[i] += r * dyr[i] * w[i] - xr[i] * c;
                dw[i] += dyr[i] * xr[i] * r;
            }
        }
    }
}
