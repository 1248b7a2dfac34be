namespace Pare.Pruning;

/// <summary>
/// Wanda: "A Simple and Effective Pruning Approach for Large Language Models" (Sun, Liu, Bair, Kolter 2023,
/// https://arxiv.org/abs/2306.11695; reference code github.com/locuslab/wanda).
/// Score S_ij = |W_ij| * ||X_j||_2, the weight times the norm of its input feature over the calibration tokens.
/// Weights compete only within their output row (comparison group = one row): unstructured removes the lowest-scoring
/// fraction of each row; N:M keeps the N best of every M consecutive inputs of a row. No weight update.
/// </summary>
public static class Wanda
{
    /// <summary>
    /// Prunes <paramref name="w"/> (rows x cols) in place. <paramref name="inputSqNorm"/>[j] is the mean over calibration
    /// tokens of x_j^2 (any positive multiple gives the same mask).
    /// </summary>
    public static void Prune(Span<float> w, int rows, int cols, ReadOnlySpan<double> inputSqNorm, SparsityPattern pattern, Span<bool> pruned)
    {
        if (inputSqNorm.Length != cols) throw new ArgumentException($"{inputSqNorm.Length} input norms for {cols} columns", nameof(inputSqNorm));
        var norm = ColumnNorms(inputSqNorm);
        Masks.PruneRows(w, rows, cols, pattern, pruned, (_, row, score) =>
        {
            for (int j = 0; j < cols; j++) score[j] = MathF.Abs(row[j]) * norm[j];
        });
    }

    /// <summary>
    /// Row-group Wanda (for the row-group compact format): the rows of every group of <paramref name="groupRows"/> keep
    /// the same columns; a column's group score is the sum over the group's rows of |W_ij| ||X_j||, and each group
    /// prunes the ratio of its columns. <paramref name="groupRows"/> = 1 is plain Wanda.
    /// </summary>
    public static void PruneRowGroups(Span<float> w, int rows, int cols, ReadOnlySpan<double> inputSqNorm, SparsityPattern pattern, int groupRows, Span<bool> pruned)
    {
        if (groupRows <= 1) { Prune(w, rows, cols, inputSqNorm, pattern, pruned); return; }
        if (inputSqNorm.Length != cols) throw new ArgumentException($"{inputSqNorm.Length} input norms for {cols} columns", nameof(inputSqNorm));
        var norm = ColumnNorms(inputSqNorm);
        Masks.PruneRowGroups(w, rows, cols, pattern, groupRows, pruned, (_, row, score) =>
        {
            for (int j = 0; j < cols; j++) score[j] = MathF.Abs(row[j]) * norm[j];
        });
    }

    /// <summary>||X_j||: the square roots of the per-column sums of squares.</summary>
    internal static float[] ColumnNorms(ReadOnlySpan<double> inputSqNorm)
    {
        var norm = new float[inputSqNorm.Length];
        for (int j = 0; j < norm.Length; j++) norm[j] = (float)Math.Sqrt(inputSqNorm[j]);
        return norm;
    }
}
