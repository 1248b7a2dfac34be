using Pare.Models.Bert;

namespace Pare.Pruning.Tokens;

/// <summary>
/// Zero-TPrune (Wang et al., zero-shot token pruning through the attention graph). I-stage: token importance is the
/// stationary weight of a Weighted PageRank on the block's attention graph (query i sends its attention A[i, j] to key j;
/// s ← Aᵀ s from uniform, <see cref="Iterations"/> steps). S-stage: the less important half of the tokens is matched to
/// the more important half by key cosine, and the less important tokens most similar to a kept one are pruned (they
/// carry the least that is not already there); rounds repeat on the survivors when more than half must go.
/// Left out from the paper: its emphasizing-informative-region and variance-based head weighting (heads are averaged).
/// </summary>
public sealed class ZeroTPrune(TokenPruneOptions options) : TokenReducer(options)
{
    public override string Name => "zero-tprune";

    /// <summary>PageRank steps (the paper finds a few dozen enough; the distribution stops moving well before).</summary>
    public const int Iterations = 30;

    /// <summary>Weighted PageRank importance of each token, summing to 1.</summary>
    public static double[] Importance(SentenceTokens s)
    {
        int n = s.Length;
        var score = Enumerable.Repeat(1.0 / n, n).ToArray();
        var next = new double[n];
        for (int it = 0; it < Iterations; it++)
        {
            Array.Clear(next);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) next[j] += s.Attention[i * n + j] * score[i];
            (score, next) = (next, score);
        }
        return score;
    }

    protected override int[] Reduce(SentenceTokens s, int remove)
    {
        var importance = Importance(s);
        var alive = Inner(s.Length).ToList();
        var root = Enumerable.Range(0, s.Length).ToArray();
        while (remove > 0)
        {
            // Most important first; B = the more important half (kept this round), A = the rest (at risk).
            var sorted = alive.OrderByDescending(t => importance[t]).ThenBy(t => t).ToArray();
            int half = (sorted.Length + 1) / 2;
            var b = sorted[..half];
            var a = sorted[half..];
            if (a.Length == 0) break;
            var sim = a.Select(t => (Token: t, Sim: b.Max(u => Cosine(s.Key(t), s.Key(u))))).OrderByDescending(x => x.Sim).ThenBy(x => importance[x.Token]).ToArray();
            int r = Math.Min(remove, a.Length);
            foreach (var (t, _) in sim.Take(r)) { root[t] = -1; alive.Remove(t); }
            remove -= r;
        }
        return root;
    }
}
