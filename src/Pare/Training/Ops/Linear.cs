using Pare.Kernels;
using Pare.Tensors;
using Pare.Training.Kernels;

namespace Pare.Training.Ops;

/// <summary>
/// A bias-free linear layer y = x · Wᵀ with W stored (out, in) as in GGUF.
/// Backward: dx = dy · W;  dW += dyᵀ · x.
/// </summary>
public static class Linear
{
    /// <param name="x">(n, in)</param><param name="w">(out, in), F32, pinned (the engine kernel reads it by address)</param><param name="y">(n, out)</param>
    public static void Forward(ReadOnlySpan<float> x, WeightMatrix w, int n, Span<float> y, int threads) =>
        MatMul.MatMulRows(w, x, n, y, threads);

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
