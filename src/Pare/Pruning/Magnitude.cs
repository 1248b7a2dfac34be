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

    /// <summary>
    /// Row-group magnitude (for the row-group compact format, <see cref="Kernels.Sparse.RowGroupSparseMatrix"/>): every
    /// <paramref name="groupRows"/> consecutive rows keep the same columns. A column's score in a group is the sum of
    /// |W| over the group's rows; one threshold over all (group, column) scores of the matrix, as plain magnitude has one
    /// over all weights. Unstructured patterns only; <paramref name="groupRows"/> = 1 is plain magnitude.
    /// </summary>
    public static void PruneRowGroups(Span<float> w, int rows, int cols, SparsityPattern pattern, int groupRows, Span<bool> pruned)
    {
        if (groupRows <= 1) { Prune(w, rows, cols, pattern, pruned); return; }
        if (pattern.IsNM) throw new PareException($"row groups take unstructured sparsity, not the {pattern} pattern");
        int groups = (rows + groupRows - 1) / groupRows;
        var score = new float[(long)groups * cols];
        for (int r = 0; r < rows; r++)
        {
            int g = r / groupRows;
            for (int c = 0; c < cols; c++) score[g * cols + c] += MathF.Abs(w[r * cols + c]);
        }
        for (int g = 0; g < groups; g++)
        {
            int n = Math.Min(groupRows, rows - g * groupRows);
            for (int c = 0; c < cols; c++) score[g * cols + c] /= n;
        }
        var groupPruned = new bool[score.Length];
        Masks.PruneSmallest(score, Masks.Count(pattern.Ratio, score.Length), groupPruned);
        Masks.SpreadGroups(groupPruned, rows, cols, groupRows, pruned);
        Masks.Apply(w, pruned);
    }
}
