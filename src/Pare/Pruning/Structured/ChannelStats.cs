namespace Pare.Pruning.Structured;

/// <summary>
/// Per-channel statistics of one linear layer's input over all calibration tokens (the inputs of attn_output and
/// ffn_down): mean (FLAP's baseline x̄, for bias compensation), variance (FLAP's fluctuation) and mean square
/// (Wanda-sp's ‖X_j‖² / tokens). Sums are kept in double; variance = E[x²] − E[x]².
/// </summary>
public sealed class ChannelStats(int cols)
{
    readonly double[] _sum = new double[cols], _sq = new double[cols];

    public int Cols { get; } = cols;
    public long Tokens { get; private set; }

    /// <summary>Adds n tokens' inputs (n x cols, row-major).</summary>
    public void Add(ReadOnlySpan<float> x, int n)
    {
        for (int t = 0; t < n; t++)
        {
            var row = x.Slice(t * Cols, Cols);
            for (int j = 0; j < Cols; j++) { double v = row[j]; _sum[j] += v; _sq[j] += v * v; }
        }
        Tokens += n;
    }

    public double Mean(int j) => _sum[j] / Math.Max(1, Tokens);
    public double MeanSq(int j) => _sq[j] / Math.Max(1, Tokens);
    public double Variance(int j) => Math.Max(0, MeanSq(j) - Mean(j) * Mean(j));

    /// <summary>The means of every channel, as floats (what the compensation multiplies with).</summary>
    public float[] Means() => [.. Enumerable.Range(0, Cols).Select(j => (float)Mean(j))];
}

/// <summary>
/// Scores of one block's prunable structures: one per attention head group (a KV head with the query heads that share
/// it: q/k/v rows and attn_output columns go together) and one per FFN channel (a gate row, an up row and a down
/// column). Higher = more important.
/// </summary>
public sealed record BlockScores(double[] Groups, double[] Channels);

/// <summary>A block's geometry: <see cref="GroupWidth"/> attn_output columns per KV group.</summary>
public readonly record struct BlockShape(int Dim, int HeadDim, int Heads, int KvHeads, int Ffn)
{
    public int QueryHeadsPerGroup => Heads / KvHeads;
    public int GroupWidth => QueryHeadsPerGroup * HeadDim;
    /// <summary>Weights of one head group: q and o (per query head) plus k and v, each head_dim x dim.</summary>
    public long GroupParams => (2L * QueryHeadsPerGroup + 2) * HeadDim * Dim;
    /// <summary>Weights of one FFN channel: a gate row, an up row, a down column.</summary>
    public long ChannelParams => 3L * Dim;
}
