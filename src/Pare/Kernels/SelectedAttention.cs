namespace Pare.Kernels;

/// <summary>
/// Attention of one query head over an explicit list of cached positions (KV policies): softmax(q·K[p]/√d) · V[p].
/// K in <see cref="BlockedAttention"/>'s blocked layout, V position-major. Scalar; the dense kernel's result over all
/// positions is its reference (test).
/// </summary>
public static class SelectedAttention
{
    /// <summary>
    /// out = Σ_p softmax_p(q·K(kvHead, p) / √headDim) V(kvHead, p) over <paramref name="first"/> then <paramref name="second"/>
    /// (positions, any order); <paramref name="scores"/> is scratch of at least their total length.
    /// </summary>
    public static void Attend(ReadOnlySpan<float> q, ReadOnlySpan<float> kBlocks, int capacity, ReadOnlySpan<float> v, int kvHeads, int headDim,
        int kvHead, ReadOnlySpan<int> first, ReadOnlySpan<int> second, Span<float> scores, Span<float> output)
    {
        int n = first.Length + second.Length, kvd = kvHeads * headDim;
        if (n == 0) throw new ArgumentException("no positions to attend");
        float scale = 1f / MathF.Sqrt(headDim), max = float.NegativeInfinity;
        for (int i = 0; i < n; i++)
        {
            int p = i < first.Length ? first[i] : second[i - first.Length];
            long at = BlockedAttention.Index(capacity, headDim, kvHead, p, 0);
            float s = 0;
            for (int d = 0; d < headDim; d++) s += q[d] * kBlocks[(int)(at + d * BlockedAttention.Block)];
            s *= scale;
            scores[i] = s;
            if (s > max) max = s;
        }
        float sum = 0;
        for (int i = 0; i < n; i++) { scores[i] = MathF.Exp(scores[i] - max); sum += scores[i]; }
        output[..headDim].Clear();
        float inv = 1f / sum;
        for (int i = 0; i < n; i++)
        {
            int p = i < first.Length ? first[i] : second[i - first.Length];
            var row = v.Slice(p * kvd + kvHead * headDim, headDim);
            float w = scores[i] * inv;
            for (int d = 0; d < headDim; d++) output[d] += w * row[d];
        }
    }
}
