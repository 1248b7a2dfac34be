namespace Pare.Pruning.Structured;

/// <summary>
/// CFSP (Wang et al., COLING 2025): coarse-to-fine structured pruning of the FFN channels only, from one forward pass.
/// Written from the paper and /work/shared/reference/structured-pruning.md (reference code wyxscir/CFSP).
/// <list type="bullet">
/// <item>Coarse: a block's importance is the angular distance between its input and output hidden states,
/// I_l = Σ_tokens arccos(cos(x_in, x_out)) / π. The budget goes to the blocks by a sigmoid of the standardized
/// importance: keep share k_l ∝ σ(z_l), scaled so the model keeps (1 − ratio) of its block parameters (all removed from
/// the FFNs; a share above 1 is capped and its excess spread over the others). More important blocks keep more.</item>
/// <item>Fine: channel j's score S_j = mean_i [A_ij / Σ_j' A_ij' + |U_ji| / Σ_j' |U_j'i| + |G_ji| / Σ_j' |G_j'i|] · ‖X_j‖
/// with A = |W_down| · ‖X_j‖ (‖X_j‖: root mean square of the down input), the relative weight of the channel among all
/// channels for each input/output dimension. (The reference code normalizes over i instead, where every term averages
/// to 1/d and the ranking reduces to ‖X_j‖; this is the paper's formula.)</item>
/// <item>No bias compensation; attention untouched. Kept widths differ per block, so the result is a deci file.</item>
/// </list>
/// </summary>
public static class Cfsp
{
    /// <summary>Σ over tokens of arccos(cos(input, output)) / π for one window (n x dim each).</summary>
    public static double AngularDistance(ReadOnlySpan<float> input, ReadOnlySpan<float> output, int n, int dim)
    {
        double sum = 0;
        for (int t = 0; t < n; t++)
        {
            var a = input.Slice(t * dim, dim);
            var b = output.Slice(t * dim, dim);
            double ab = 0, aa = 0, bb = 0;
            for (int i = 0; i < dim; i++) { ab += (double)a[i] * b[i]; aa += (double)a[i] * a[i]; bb += (double)b[i] * b[i]; }
            double cos = aa > 0 && bb > 0 ? Math.Clamp(ab / Math.Sqrt(aa * bb), -1, 1) : 1;
            sum += Math.Acos(cos) / Math.PI;
        }
        return sum;
    }

    /// <summary>Fine channel scores of one block (gate, up: ffn x dim; down: dim x ffn).</summary>
    public static double[] ChannelScores(BlockShape s, float[] gate, float[] up, float[] down, ChannelStats ffnIn)
    {
        int dim = s.Dim, ffn = s.Ffn;
        var norm = new double[ffn];
        for (int j = 0; j < ffn; j++) norm[j] = Math.Sqrt(ffnIn.MeanSq(j));
        var score = new double[ffn];
        var colSum = new double[dim];
        // Down: A_ij = |W_down[i, j]| ‖X_j‖, normalized over the channels j of each output row i.
        for (int i = 0; i < dim; i++)
        {
            double rs = 0;
            for (int j = 0; j < ffn; j++) rs += Math.Abs(down[(long)i * ffn + j]) * norm[j];
            if (rs > 0) for (int j = 0; j < ffn; j++) score[j] += Math.Abs(down[(long)i * ffn + j]) * norm[j] / rs / dim;
        }
        // Up and gate: |W[j, i]| normalized over the channels j of each input column i.
        foreach (var w in new[] { up, gate })
        {
            Array.Clear(colSum);
            for (int j = 0; j < ffn; j++) for (int i = 0; i < dim; i++) colSum[i] += Math.Abs(w[(long)j * dim + i]);
            for (int j = 0; j < ffn; j++)
            {
                double acc = 0;
                for (int i = 0; i < dim; i++) if (colSum[i] > 0) acc += Math.Abs(w[(long)j * dim + i]) / colSum[i];
                score[j] += acc / dim;
            }
        }
        for (int j = 0; j < ffn; j++) score[j] *= norm[j];
        return score;
    }

    /// <summary>FFN channels each block keeps: the ratio's parameters all come out of the FFNs, shared by σ(z(importance)).</summary>
    public static int[] Allocate(double[] importance, BlockShape s, double ratio, int layers)
    {
        double layerTotal = s.KvHeads * (double)s.GroupParams + s.Ffn * (double)s.ChannelParams;
        double removeChannels = ratio * layerTotal * layers / s.ChannelParams;
        double keepShare = 1 - removeChannels / ((double)s.Ffn * layers);
        if (keepShare * s.Ffn < 1)
            throw new PareException($"ratio {ratio} would remove every FFN channel (CFSP prunes FFN channels only; at most {(double)s.Ffn * s.ChannelParams / layerTotal:P0} of the block parameters)");
        double mean = importance.Average();
        double std = Math.Sqrt(importance.Sum(x => (x - mean) * (x - mean)) / Math.Max(1, importance.Length - 1));
        var w = importance.Select(x => 1 / (1 + Math.Exp(-(std > 0 ? (x - mean) / std : 0)))).ToArray();
        var share = new double[layers];
        var capped = new bool[layers];
        for (int round = 0; round < layers; round++)
        {
            double free = keepShare * layers - capped.Count(c => c);
            double wsum = Enumerable.Range(0, layers).Where(l => !capped[l]).Sum(l => w[l]);
            bool changed = false;
            for (int l = 0; l < layers; l++)
            {
                share[l] = capped[l] ? 1 : free * w[l] / wsum;
                if (!capped[l] && share[l] > 1) { capped[l] = true; changed = true; }
            }
            if (!changed) break;
        }
        return [.. share.Select(x => Math.Clamp((int)Math.Round(x * s.Ffn), 1, s.Ffn))];
    }
}
