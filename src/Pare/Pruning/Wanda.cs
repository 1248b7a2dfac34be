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
        var norm = new float[cols];
        for (int j = 0; j < cols; j++) norm[j] = (float)Math.Sqrt(inputSqNorm[j]);
        int k = Masks.Count(pattern.Ratio, cols);
        var score = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            var row = w.Slice(r * cols, cols);
            for (int j = 0; j < cols; j++) score[j] = MathF.Abs(row[j]) * norm[j];
            if (pattern.IsNM) Masks.PruneNM(score, pattern.N, pattern.M, pruned.Slice(r * cols, cols));
            else Masks.PruneSmallest(score, k, pruned.Slice(r * cols, cols));
        }
        Masks.Apply(w, pruned);
    }
}
