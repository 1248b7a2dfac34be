using Pare.Training.Kernels;

namespace Pare.Training.Ops;

/// <summary>
/// A bias-free linear layer y = x · Wᵀ with W stored (out, in) as in GGUF.
/// Forward from a transposed copy Wᵀ (in, out), so it is the same row-major product as dx = dy · W (the register-tiled
/// <see cref="GradMatMul.InputGrad"/>, about 3x the engine's F32 prefill kernel at these widths).
/// Backward: dx = dy · W;  dW += dyᵀ · x.
/// </summary>
public static class Linear
{
    /// <param name="x">(n, in)</param><param name="wT">(in, out): W transposed (<see cref="Transpose"/>)</param><param name="y">(n, out)</param>
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> wT, int n, int inDim, int outDim, Span<float> y, int threads) =>
        GradMatMul.InputGrad(x, wT, y, n, inDim, outDim, accumulate: false, threads);

    /// <summary>wT (cols, rows) = w (rows, cols)ᵀ, in blocks of 16 × 16 so both sides stay in cache lines.</summary>
    public static void Transpose(ReadOnlySpan<float> w, int rows, int cols, Span<float> wT)
    {
        if (w.Length != (long)rows * cols || wT.Length != w.Length) throw new ArgumentException("transpose: sizes do not match the shape");
        const int B = 16;
        for (int r0 = 0; r0 < rows; r0 += B)
            for (int c0 = 0; c0 < cols; c0 += B)
                for (int r = r0, r1 = Math.Min(rows, r0 + B); r < r1; r++)
                    for (int c = c0, c1 = Math.Min(cols, c0 + B); c < c1; c++)
                        wT[c * rows + r] = w[r * cols + c];
    }

    /// <param name="dy">(n, out)</param><param name="x">(n, in)</param><param name="w">(out, in)</param>
    /// <param name="dw">(out, in), accumulated</param>
    /// <param name="dx">(n, in): written, or accumulated with <paramref name="accumulateDx"/>; skipped when empty</param>
    public static void Backward(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> w, int n, int outDim, int inDim,
        Span<float> dw, Span<float> dx, bool accumulateDx, int threads)
    {
        GradMatMul.WeightGrad(dy, x, dw, n, outDim, inDim, threads);
        if (!dx.IsEmpty) GradMatMul.InputGrad(dy, w, dx, n, outDim, inDim, accumulateDx, threads);
    }
}
