using System.Numerics;
using System.Runtime.Intrinsics;

namespace Pare.Speculative;

/// <summary>
/// Token Recycling (Luo et al., 2024): the candidate tokens a model computes and discards at every step are recycled.
/// An adjacency matrix keeps, for each token, the top-k tokens the model predicted after it the last time it was
/// evaluated (V x k int32: 1 MB for V = 32000, k = 8). A static tree template — nodes of (parent, rank) — is filled
/// level by level from the matrix, verified, and every verified node (accepted or not) refreshes its row.
/// The matrix persists across prompts, so the drafter warms up over a session.
/// </summary>
public sealed class TokenRecycling : IDrafter
{
    public const int K = 8;
    int[] _adj = [];
    int _vocab;

    /// <summary>The tree template: (parent node, rank among the parent's successors), parents before children;
    /// 80 nodes over 6 levels, as in the paper.</summary>
    public static readonly (int Parent, int Rank)[] Template = BuildTemplate();

    public string Name => "recycle";

    /// <summary>Bytes held by the adjacency matrix (V x k x 4).</summary>
    public long MatrixBytes => (long)_adj.Length * sizeof(int);

    public void Start(IReadOnlyList<int> prompt, ReadOnlySpan<float> promptLogits, int vocab)
    {
        if (_vocab != vocab)
        {
            _vocab = vocab;
            _adj = new int[checked(vocab * K)];
            Array.Fill(_adj, -1);
        }
        // Seed from the prompt's prefill: each prompt token's row becomes the top-k the model predicted after it.
        int n = promptLogits.Length / vocab;
        for (int i = 0; i < n && i < prompt.Count; i++) SetRow(prompt[i], promptLogits.Slice(i * vocab, vocab));
    }

    public DraftTree Draft(IReadOnlyList<int> history, int budget)
    {
        var tree = new DraftTree(history[^1]);
        var nodeOf = new int[Template.Length + 1];
        nodeOf[0] = 0;
        for (int i = 0; i < Template.Length && tree.Count < budget; i++)
        {
            var (parent, rank) = Template[i];
            int pn = nodeOf[parent];
            if (pn < 0) { nodeOf[i + 1] = -1; continue; }
            int t = _adj.Length == 0 ? -1 : _adj[tree.Tokens[pn] * K + rank];
            nodeOf[i + 1] = t < 0 ? -1 : tree.Add(t, pn);
        }
        return tree;
    }

    public void Update(IReadOnlyList<int> history, DraftTree tree, ReadOnlySpan<float> logits, int vocab)
    {
        for (int i = 0; i < tree.Count; i++) SetRow(tree.Tokens[i], logits.Slice(i * vocab, vocab));
    }

    /// <summary>adj[token] = the k largest logits' tokens, best first.</summary>
    void SetRow(int token, ReadOnlySpan<float> logits)
    {
        if ((uint)token >= (uint)_vocab) return;
        TopK(logits, _adj.AsSpan(token * K, K));
    }

    /// <summary>row = the tokens of the K largest logits, best first (ties: the lower token first); -1 past the vocabulary.</summary>
    internal static void TopK(ReadOnlySpan<float> logits, Span<int> row)
    {
        Span<float> best = stackalloc float[K];
        best.Fill(float.NegativeInfinity);
        row.Fill(-1);
        // Most logits lose to the current k-th best: compare 16 at a time with it and insert only those that beat it
        // (in index order, as the scalar scan does: the same top-k, ties to the lower token). This runs for every verified
        // node of `auto`'s trees; inserting all 16 of a block where one beat the k-th best took 1.5 us of a row's 2
        // (8,192 logits; 0.6 us this way, session 15).
        int v = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var bar = Vector512.Create(float.NegativeInfinity);
            for (; v + 16 <= logits.Length; v += 16)
            {
                ulong above = Vector512.GreaterThan(Vector512.Create(logits.Slice(v, 16)), bar).ExtractMostSignificantBits();
                if (above == 0) continue;
                do
                {
                    int u = v + BitOperations.TrailingZeroCount(above);
                    Insert(logits[u], u, best, row);
                    above &= above - 1;
                } while (above != 0);
                bar = Vector512.Create(best[K - 1]);
            }
        }
        for (; v < logits.Length; v++) Insert(logits[v], v, best, row);
    }

    /// <summary>The scalar scan <see cref="TopK"/> replaces with a vector one (the reference the tests compare with).</summary>
    internal static void TopKScalar(ReadOnlySpan<float> logits, Span<int> row)
    {
        Span<float> best = stackalloc float[K];
        best.Fill(float.NegativeInfinity);
        row.Fill(-1);
        for (int v = 0; v < logits.Length; v++) Insert(logits[v], v, best, row);
    }

    /// <summary>Puts token v with logit l into the sorted top-k (best, row) if it beats the last (a NaN never does, as in the vector scan).</summary>
    static void Insert(float l, int v, Span<float> best, Span<int> row)
    {
        if (!(l > best[K - 1])) return;
        int j = K - 1;
        while (j > 0 && best[j - 1] < l) { best[j] = best[j - 1]; row[j] = row[j - 1]; j--; }
        best[j] = l; row[j] = v;
    }

    static (int, int)[] BuildTemplate()
    {
        // Best-first: a node's score is the product of assumed acceptance rates of the ranks on its path (the top
        // successor is taken far more often than the others), so the 80 likeliest paths up to depth 6 form the tree.
        double[] rate = [0.6, 0.15, 0.07, 0.05, 0.04, 0.03, 0.03, 0.03];
        const int nodes = 80, maxDepth = 6;
        var result = new List<(int Parent, int Rank)>();
        var frontier = new PriorityQueue<(int Parent, int Rank, int Depth, double Score), double>();
        for (int r = 0; r < K; r++) frontier.Enqueue((0, r, 1, rate[r]), -rate[r]);
        while (result.Count < nodes && frontier.Count > 0)
        {
            var (parent, rank, depth, score) = frontier.Dequeue();
            result.Add((parent, rank));
            int id = result.Count; // node ids: 0 = root, template entry i = node i + 1
            if (depth < maxDepth)
                for (int r = 0; r < K; r++) frontier.Enqueue((id, r, depth + 1, score * rate[r]), -score * rate[r]);
        }
        // Breadth-first order (parents before children) is kept: a child is only enqueued after its parent was added.
        return [.. result];
    }
}
