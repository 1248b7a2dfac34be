namespace Pare.Pruning.Structured;

/// <summary>
/// Wanda-sp, structured Wanda (FLAP repository's <c>prune_wanda_sp</c>, the FLAP paper's baseline): the score of input
/// channel j of attn_output / ffn_down is mean_i |W_ij| · ‖X_j‖ (‖X_j‖ = root mean square of the input over the
/// calibration tokens); a head group scores the sum of its columns. Same ratio in every layer, no bias compensation.
/// Here the statistics come from the shared dense calibration pass (the reference runs it sequentially through the
/// already-pruned blocks).
/// </summary>
public static class WandaSp
{
    public static BlockScores Scores(BlockShape s, float[] wo, float[] down, ChannelStats attnOut, ChannelStats ffnIn)
    {
        var attn = Channel(wo, s.Dim, s.Heads * s.HeadDim, attnOut);
        var groups = new double[s.KvHeads];
        for (int g = 0; g < s.KvHeads; g++)
            for (int j = g * s.GroupWidth; j < (g + 1) * s.GroupWidth; j++) groups[g] += attn[j];
        return new BlockScores(groups, Channel(down, s.Dim, s.Ffn, ffnIn));
    }

    static double[] Channel(float[] w, int rows, int cols, ChannelStats x)
    {
        var score = new double[cols];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < cols; j++) score[j] += Math.Abs(w[(long)r * cols + j]);
        for (int j = 0; j < cols; j++) score[j] = score[j] / rows * Math.Sqrt(x.MeanSq(j));
        return score;
    }
}
