namespace Pare.Pruning;

/// <summary>Mask selection shared by the methods: exact counts, ties broken by position.</summary>
public static class Masks
{
    /// <summary>
    /// Marks exactly <paramref name="k"/> entries with the smallest scores as pruned (ties: lowest index first).
    /// <paramref name="scratch"/>, when at least as long as the scores, is used for the selection instead of a fresh copy.
    /// </summary>
    public static void PruneSmallest(ReadOnlySpan<float> scores, int k, Span<bool> pruned, Span<float> scratch = default)
    {
        if (k <= 0) return;
        if (k >= scores.Length) { pruned.Fill(true); return; }
        var copy = scratch.Length >= scores.Length ? scratch[..scores.Length] : new float[scores.Length];
        scores.CopyTo(copy);
        float thr = KthSmallest(copy, k - 1);
        int below = 0;
        foreach (var s in scores) if (s < thr) below++;
        int ties = k - below;
        for (int i = 0; i < scores.Length; i++)
        {
            if (scores[i] < thr) pruned[i] = true;
            else if (scores[i] == thr && ties > 0) { pruned[i] = true; ties--; }
        }
    }

    /// <summary>The value that would sit at index <paramref name="k"/> if <paramref name="a"/> were sorted (quickselect, O(n); reorders a).</summary>
    public static float KthSmallest(Span<float> a, int k)
    {
        int lo = 0, hi = a.Length - 1;
        var rng = new Random(12345);
        while (lo < hi)
        {
            float pivot = a[rng.Next(lo, hi + 1)];
            int i = lo, j = hi;
            while (i <= j)
            {
                while (a[i] < pivot) i++;
                while (a[j] > pivot) j--;
                if (i <= j) { (a[i], a[j]) = (a[j], a[i]); i++; j--; }
            }
            if (k <= j) hi = j;
            else if (k >= i) lo = i;
            else return a[k];
        }
        return a[k];
    }

    /// <summary>In every group of M consecutive entries, prunes the M - N with the smallest scores (keeps the N largest).</summary>
    public static void PruneNM(ReadOnlySpan<float> scores, int n, int m, Span<bool> pruned)
    {
        Span<int> idx = stackalloc int[m];
        for (int g = 0; g + m <= scores.Length; g += m) PruneGroup(scores.Slice(g, m), n, pruned.Slice(g, m), idx);
    }

    /// <summary>Prunes the M - N smallest of one group of M scores.</summary>
    public static void PruneGroup(ReadOnlySpan<float> group, int n, Span<bool> pruned, Span<int> scratch)
    {
        int m = group.Length;
        for (int i = 0; i < m; i++) scratch[i] = i;
        // Insertion sort by score, stable: m is small (4 or 8).
        for (int i = 1; i < m; i++)
        {
            int v = scratch[i], j = i - 1;
            while (j >= 0 && group[scratch[j]] > group[v]) { scratch[j + 1] = scratch[j]; j--; }
            scratch[j + 1] = v;
        }
        for (int i = 0; i < m - n; i++) pruned[scratch[i]] = true;
    }

    /// <summary>Count of pruned weights for a fraction of <paramref name="total"/>: round to nearest.</summary>
    /// <summary>Scores one row of weights into <c>score</c> (cols values; higher = keep).</summary>
    public delegate void RowScorer(int row, ReadOnlySpan<float> weights, Span<float> score);

    /// <summary>
    /// Per-output-row selection (Wanda's comparison group, also GBLM's): each row is scored, then its lowest scores are
    /// pruned (the pattern's ratio of the row, or N of every M), and the pruned weights are zeroed.
    /// </summary>
    public static void PruneRows(Span<float> w, int rows, int cols, SparsityPattern pattern, Span<bool> pruned, RowScorer scoreRow)
    {
        int k = Count(pattern.Ratio, cols);
        var score = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            scoreRow(r, w.Slice(r * cols, cols), score);
            if (pattern.IsNM) PruneNM(score, pattern.N, pattern.M, pruned.Slice(r * cols, cols));
            else PruneSmallest(score, k, pruned.Slice(r * cols, cols));
        }
        Apply(w, pruned);
    }

    public static int Count(double ratio, long total) => (int)Math.Round(ratio * total, MidpointRounding.AwayFromZero);

    /// <summary>Marks every row of group g pruned at column c where <paramref name="groupPruned"/>[g * cols + c] is set.</summary>
    public static void SpreadGroups(ReadOnlySpan<bool> groupPruned, int rows, int cols, int groupRows, Span<bool> pruned)
    {
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                if (groupPruned[r / groupRows * cols + c]) pruned[r * cols + c] = true;
    }

    /// <summary>
    /// Per-row-group selection: the rows of each group of <paramref name="groupRows"/> share their pruned columns; a
    /// column's group score is the sum of the rows' scores (<paramref name="scoreRow"/>), and each group prunes the
    /// pattern's ratio of its columns (Wanda's per-row comparison group, widened to the row group).
    /// </summary>
    public static void PruneRowGroups(Span<float> w, int rows, int cols, SparsityPattern pattern, int groupRows, Span<bool> pruned, RowScorer scoreRow)
    {
        if (pattern.IsNM) throw new PareException($"row groups take unstructured sparsity, not the {pattern} pattern");
        int k = Count(pattern.Ratio, cols);
        var score = new float[cols];
        var sum = new float[cols];
        var groupPruned = new bool[cols];
        for (int r0 = 0; r0 < rows; r0 += groupRows)
        {
            int r1 = Math.Min(rows, r0 + groupRows);
            sum.AsSpan().Clear();
            for (int r = r0; r < r1; r++)
            {
                scoreRow(r, w.Slice(r * cols, cols), score);
                for (int c = 0; c < cols; c++) sum[c] += score[c];
            }
            groupPruned.AsSpan().Clear();
            PruneSmallest(sum, k, groupPruned);
            for (int r = r0; r < r1; r++)
                for (int c = 0; c < cols; c++)
                    if (groupPruned[c]) pruned[r * cols + c] = true;
        }
        Apply(w, pruned);
    }

    /// <summary>Zeroes the pruned weights.</summary>
    public static void Apply(Span<float> w, ReadOnlySpan<bool> pruned)
    {
        for (int i = 0; i < w.Length; i++) if (pruned[i]) w[i] = 0;
    }
}
