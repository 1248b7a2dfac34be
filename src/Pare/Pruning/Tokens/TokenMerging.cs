using Pare.Models.Bert;

namespace Pare.Pruning.Tokens;

/// <summary>
/// Token Merging (ToMe, Bolya et al.), the merging baseline. Bipartite soft matching: the tokens ([CLS], [SEP] aside)
/// alternate into sets A and B; each A token draws an edge to its most similar B token (key cosine); the <c>r</c>
/// most similar edges are merged, the merged state being the size-weighted mean (done by the encoder), and later
/// attention counts a merged token by its size (proportional attention). More than |A| merges take several rounds,
/// the merged keys being size-weighted means too.
/// </summary>
public sealed class TokenMerging(TokenPruneOptions options) : TokenReducer(options)
{
    public override string Name => "tome";

    protected override int[] Reduce(SentenceTokens s, int remove)
    {
        int d = s.Dim;
        var keys = (float[])s.Keys.Clone();
        var size = (float[])s.Sizes.Clone();
        var root = Enumerable.Range(0, s.Length).ToArray();
        var alive = Inner(s.Length).ToList();
        while (remove > 0 && alive.Count >= 2)
        {
            var a = alive.Where((_, i) => i % 2 == 0).ToArray();
            var b = alive.Where((_, i) => i % 2 == 1).ToArray();
            var edges = a.Select(t =>
            {
                int best = b[0]; double bestSim = double.NegativeInfinity;
                foreach (int u in b)
                {
                    double c = Cosine(keys.AsSpan(t * d, d), keys.AsSpan(u * d, d));
                    if (c > bestSim) { bestSim = c; best = u; }
                }
                return (From: t, To: best, Sim: bestSim);
            }).OrderByDescending(e => e.Sim).ThenBy(e => e.From).ToArray();
            int r = Math.Min(remove, edges.Length);
            foreach (var (from, to, _) in edges.Take(r))
            {
                float sf = size[from], st = size[to];
                for (int c = 0; c < d; c++) keys[to * d + c] = (keys[from * d + c] * sf + keys[to * d + c] * st) / (sf + st);
                size[to] = sf + st;
                for (int t = 0; t < root.Length; t++) if (root[t] == from) root[t] = to;
                alive.Remove(from);
            }
            remove -= r;
        }
        return root;
    }
}
