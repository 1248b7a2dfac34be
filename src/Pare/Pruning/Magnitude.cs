namespace Pare.Pruning;

/// <summary>
/// Magnitude pruning, the classic baseline (Han et al. 2015, "Learning both Weights and Connections for Efficient Neural
/// Networks", https://arxiv.org/abs/1506.02626; the baseline of SparseGPT and Wanda). Score = |W|. Unstructured: one
/// threshold for the whole matrix, so per-row sparsity varies. N:M: in every M consecutive input weights of a row,
/// keep the N largest. No calibration data and no weight update.
/// </summary>
public static class Magnitude
{
    /// <summary>Prunes <paramref name="w"/> (rows x cols, row-major) in place and marks the pruned entries.</summary>
    public static void Prune(Span<float> w, int rows, int cols, SparsityPattern pattern, Span<bool> pruned)
    {
        var score = new float[w.Length];
        for (int i = 0; i < w.Length; i++) score[i] = MathF.Abs(w[i]);
        if (pattern.IsNM)
            for (int r = 0; r < rows; r++) Masks.PruneNM(score.AsSpan(r * cols, cols), pattern.N, pattern.M, pruned.Slice(r * cols, cols));
        else
            Masks.PruneSmallest(score, Masks.Count(pattern.Ratio, w.Length), pruned);
        Masks.Apply(w, pruned);
    }
}
