namespace Pare.Speculative;

/// <summary>
/// Lossless sampling with a draft distribution (Leviathan et al., 2023; Chen et al., 2023), extended to trees by
/// recursive rejection over siblings (SpecInfer, Miao et al., 2024). At a node with target distribution p, the trials
/// (children proposed under it) are tried in order: a sample x from q is accepted with probability min(1, p(x)/q(x)),
/// and on rejection p becomes normalize(max(0, p - q)); a deterministic proposal x (q a point mass) is accepted with
/// probability p(x), and on rejection p(x) is set to 0 and p renormalized. When every trial is rejected, the token is
/// drawn from what is left of p. Each trial is one step of speculative sampling of the current p, so the token that
/// comes out is distributed exactly as p, whatever the drafts were.
/// </summary>
public static class SpeculativeSampling
{
    /// <summary>
    /// Verifies the trials at one node. <paramref name="p"/> is the target's processed distribution over the vocabulary
    /// (normalized; overwritten by the residuals). Returns the index of the accepted trial (-1 if none) and the token.
    /// </summary>
    public static (int Trial, int Token) Verify(Span<float> p, IReadOnlyList<(int Token, float[]? Q)> trials, Random rng)
    {
        for (int i = 0; i < trials.Count; i++)
        {
            var (x, q) = trials[i];
            double px = p[x];
            if (q == null)
            {
                if (rng.NextDouble() < px) return (i, x);
                if (px >= 1) continue; // cannot happen after the draw above; keeps p a distribution
                p[x] = 0;
                Scale(p, 1 / (1 - px));
                continue;
            }
            double qx = q[x];
            // Accept with probability min(1, p(x)/q(x)); q(x) > 0 since x was drawn from q.
            if (rng.NextDouble() * qx < px) return (i, x);
            // Residual max(0, p - q), normalized. It has mass whenever a rejection could happen (p != q).
            double sum = 0;
            for (int v = 0; v < p.Length; v++) sum += Math.Max(0f, p[v] - q[v]);
            if (sum <= 0) continue;
            float inv = (float)(1 / sum);
            for (int v = 0; v < p.Length; v++) p[v] = Math.Max(0f, p[v] - q[v]) * inv;
        }
        return (-1, DraftDistribution.Draw(p, rng));
    }

    static void Scale(Span<float> p, double s)
    {
        float f = (float)s;
        for (int v = 0; v < p.Length; v++) p[v] *= f;
    }
}
