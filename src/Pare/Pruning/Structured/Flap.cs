namespace Pare.Pruning.Structured;

/// <summary>
/// FLAP (An et al., AAAI 2024): fluctuation-based adaptive structured pruning, retraining-free. Written from the paper
/// and /work/shared/reference/structured-pruning.md (reference code CASIA-IVA-Lab/FLAP, WIFV metric, AL-AM structure).
/// <list type="bullet">
/// <item>Score (WIFV) of input channel j of attn_output / ffn_down: the variance of x_j over the calibration tokens
/// times the squared norm of the weight column W[:, j]. A head group's score is the mean over its columns, squared
/// (as the reference code does for attention); an FFN channel's score is its column's.</item>
/// <item>Adaptive structure: each (layer, module) row of scores is standardized (z = (s − mean) / std); all groups
/// and channels of the model are sorted by z together, a group weighted by its parameter count against a channel's,
/// and one threshold keeps the best (1 − ratio) of the block parameters. The uniform variant keeps the same share
/// in every layer.</item>
/// <item>Bias compensation: the removed channels' baseline (mean) contribution, b = W[:, removed] · x̄[removed], is
/// stored as attn_output.bias / ffn_down.bias, so the layer's mean output is unchanged.</item>
/// </list>
/// </summary>
public static class Flap
{
    /// <summary>WIFV scores of a block from the dense weights and the calibration statistics of the two inputs.</summary>
    public static BlockScores Scores(BlockShape s, float[] wo, float[] down, ChannelStats attnOut, ChannelStats ffnIn)
    {
        var attn = Wifv(wo, s.Dim, s.Heads * s.HeadDim, attnOut);
        var groups = new double[s.KvHeads];
        for (int g = 0; g < s.KvHeads; g++)
        {
            double mean = 0;
            for (int j = g * s.GroupWidth; j < (g + 1) * s.GroupWidth; j++) mean += attn[j];
            mean /= s.GroupWidth;
            groups[g] = mean * mean;
        }
        return new BlockScores(groups, Wifv(down, s.Dim, s.Ffn, ffnIn));
    }

    /// <summary>F_j · ‖W[:, j]‖² for W (rows x cols, row-major).</summary>
    static double[] Wifv(float[] w, int rows, int cols, ChannelStats x)
    {
        var colSq = new double[cols];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < cols; j++) { double v = w[(long)r * cols + j]; colSq[j] += v * v; }
        for (int j = 0; j < cols; j++) colSq[j] *= x.Variance(j);
        return colSq;
    }

    /// <summary>
    /// The adaptive (AL-AM) selection: which groups and channels every layer keeps so that about (1 − ratio) of the
    /// block parameters remain. Every layer keeps at least its best group and its best channel (llama.cpp's deci
    /// layers with heads need an FFN, and Pare runs no attention-free layer): that floor is counted in the result.
    /// </summary>
    public static (bool[][] Groups, bool[][] Channels) SelectAdaptive(IReadOnlyList<BlockScores> scores, BlockShape s, double ratio)
    {
        var items = new List<(double Z, int Layer, bool IsGroup, int Index)>();
        for (int l = 0; l < scores.Count; l++)
        {
            foreach (var (z, i) in Standardize(scores[l].Groups).Select((z, i) => (z, i))) items.Add((z, l, true, i));
            foreach (var (z, i) in Standardize(scores[l].Channels).Select((z, i) => (z, i))) items.Add((z, l, false, i));
        }
        // Best first; ties by position so the result is deterministic.
        items.Sort((a, b) => b.Z != a.Z ? b.Z.CompareTo(a.Z) : (a.Layer, a.IsGroup ? 0 : 1, a.Index).CompareTo((b.Layer, b.IsGroup ? 0 : 1, b.Index)));
        double total = scores.Count * (s.KvHeads * (double)s.GroupParams + s.Ffn * (double)s.ChannelParams);
        double budget = (1 - ratio) * total, kept = 0;
        var groups = scores.Select(b => new bool[b.Groups.Length]).ToArray();
        var channels = scores.Select(b => new bool[b.Channels.Length]).ToArray();
        foreach (var it in items)
        {
            double w = it.IsGroup ? s.GroupParams : s.ChannelParams;
            if (kept + w / 2 > budget) break; // stop where the kept weight is closest to the budget
            (it.IsGroup ? groups : channels)[it.Layer][it.Index] = true;
            kept += w;
        }
        for (int l = 0; l < scores.Count; l++)
        {
            if (!groups[l].Any(k => k)) groups[l][ArgMax(scores[l].Groups)] = true;
            if (!channels[l].Any(k => k)) channels[l][ArgMax(scores[l].Channels)] = true;
        }
        return (groups, channels);
    }

    static double[] Standardize(double[] v)
    {
        double mean = v.Average();
        double std = Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / Math.Max(1, v.Length - 1)); // torch.std: unbiased
        return [.. v.Select(x => std > 0 ? (x - mean) / std : 0)];
    }

    internal static int ArgMax(double[] v)
    {
        int best = 0;
        for (int i = 1; i < v.Length; i++) if (v[i] > v[best]) best = i;
        return best;
    }

    /// <summary>
    /// Bias compensation for one output linear (W: rows x cols, dense): b = Σ over removed input channels j of
    /// W[:, j] · x̄_j (rows). Added to the layer's output in place of the removed channels' mean contribution.
    /// </summary>
    public static float[] Compensation(float[] w, int rows, int cols, ReadOnlySpan<bool> keptColumn, ReadOnlySpan<float> means)
    {
        var b = new float[rows];
        for (int r = 0; r < rows; r++)
        {
            double acc = 0;
            for (int j = 0; j < cols; j++) if (!keptColumn[j]) acc += (double)w[(long)r * cols + j] * means[j];
            b[r] = (float)acc;
        }
        return b;
    }
}
