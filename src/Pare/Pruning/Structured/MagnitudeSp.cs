namespace Pare.Pruning.Structured;

/// <summary>
/// Magnitude-structured baseline (the "Magnitude-sp" rows of the FLAP/CFSP tables): a structure's score is the L2 norm
/// of all its weights, a head group's q/k/v rows and attn_output columns, an FFN channel's gate row, up row and down
/// column. No calibration, same ratio in every layer, no compensation.
/// </summary>
public static class MagnitudeSp
{
    /// <summary>Scores from a block's dense matrices (row-major: q (heads·hd x dim), k/v (kv·hd x dim), o (dim x heads·hd), gate/up (ffn x dim), down (dim x ffn)).</summary>
    public static BlockScores Scores(BlockShape s, float[] q, float[] k, float[] v, float[] o, float[] gate, float[] up, float[] down)
    {
        int qd = s.Heads * s.HeadDim, hd = s.HeadDim, dim = s.Dim;
        var groups = new double[s.KvHeads];
        for (int g = 0; g < s.KvHeads; g++)
        {
            double acc = 0;
            for (int r = g * s.GroupWidth; r < (g + 1) * s.GroupWidth; r++) acc += RowSq(q, r, dim);
            for (int r = g * hd; r < (g + 1) * hd; r++) acc += RowSq(k, r, dim) + RowSq(v, r, dim);
            for (int i = 0; i < dim; i++)
                for (int j = g * s.GroupWidth; j < (g + 1) * s.GroupWidth; j++) { double x = o[(long)i * qd + j]; acc += x * x; }
            groups[g] = Math.Sqrt(acc);
        }
        var channels = new double[s.Ffn];
        for (int c = 0; c < s.Ffn; c++) channels[c] = RowSq(gate, c, dim) + RowSq(up, c, dim);
        for (int i = 0; i < dim; i++)
            for (int c = 0; c < s.Ffn; c++) { double x = down[(long)i * s.Ffn + c]; channels[c] += x * x; }
        for (int c = 0; c < s.Ffn; c++) channels[c] = Math.Sqrt(channels[c]);
        return new BlockScores(groups, channels);
    }

    static double RowSq(float[] m, int r, int cols)
    {
        double acc = 0;
        for (int j = 0; j < cols; j++) { double x = m[(long)r * cols + j]; acc += x * x; }
        return acc;
    }
}
