using Pare.Kernels;

namespace Pare.Models.Kv;

/// <summary>
/// Decides which cached positions each attention head reads (KV-cache pruning: StreamingLLM, H2O, SnapKV, Quest,
/// TokenSelect, ActQKV; implementations in Pare.LongContext.KvPolicies). The session asks it once per (layer, new
/// token) before attention and tells it which tokens were committed; it never changes the cache, so a policy only
/// masks entries (nothing is lost: a later query may read an entry an earlier one skipped).
/// </summary>
/// <remarks>
/// Contract the engine relies on (and the tests check): <see cref="Select"/> returns null (attend to everything, the
/// dense kernel runs: bitwise the full cache) whenever the query's prefix fits the policy's budget; a selection always
/// contains the policy's local window, the last <see cref="LocalWindow"/> positions before the query; and it depends only
/// on the committed cache, committed queries and the query itself. With those, a draft-tree node at depth d &lt;=
/// LocalWindow (whose ancestors are attended in full) sees exactly what plain decoding would, so speculative decoding
/// keeps plain greedy's output under the same policy.
/// </remarks>
public interface IKvPolicy
{
    /// <summary>Name as on the command line (full, streaming, h2o, snapkv, quest, tokenselect, actqkv).</summary>
    string Name { get; }

    /// <summary>Positions each query attends to beyond its own chunk (the budget), or int.MaxValue for no limit.</summary>
    int Budget { get; }

    /// <summary>The last positions before a query that every selection keeps (exactness of tree verification needs tree depth &lt;= this).</summary>
    int LocalWindow { get; }

    /// <summary>
    /// Positions of the prefix that the query at <paramref name="queryPosition"/> attends to, per query head (entries may share
    /// one array), each sorted ascending with values &lt; queryPosition; the engine keeps those below <paramref name="prefix"/>
    /// (the committed tokens) and adds the query's own chunk (causal) or tree ancestors. Null = every position.
    /// </summary>
    /// <param name="layer">Layer index.</param>
    /// <param name="slot">Index of the token in the current batch (0 in plain decoding).</param>
    /// <param name="query">The token's queries after RoPE, heads x head_dim.</param>
    /// <param name="queryPosition">The token's position (prefix + its index or tree depth).</param>
    /// <param name="prefix">Committed positions in the cache.</param>
    /// <param name="kv">The layer's cache, read-only.</param>
    int[][]? Select(int layer, int slot, ReadOnlySpan<float> query, int queryPosition, int prefix, in KvView kv);

    /// <summary>n tokens were committed at positions pos0.. of layer <paramref name="layer"/> (their queries, n x q_dim).</summary>
    void OnAppend(int layer, ReadOnlySpan<float> queries, int n, int pos0, in KvView kv);

    /// <summary>The session forgot every position from <paramref name="position"/> on (0 = a new conversation).</summary>
    void OnRewind(int position);

    /// <summary>
    /// Re-number positions over the gathered sequence (TokenSelect's length extrapolation): a query then sees its selected
    /// prefix keys as if they sat at positions 0..G-1 (G = the selection's size, in its order), its own chunk or tree
    /// ancestors after them, and itself at G + its index, so RoPE distances never exceed the budget plus the chunk.
    /// False (default): keys keep the rotation of their true positions.
    /// </summary>
    bool Renumber => false;

    /// <summary>
    /// A position-major copy of layer <paramref name="layer"/>'s K (row p at p × kv_dim, as V) that the policy keeps for
    /// every committed position its last <see cref="Select"/> saw (below its prefix), with the cache's values: attention
    /// over scattered selected positions then reads a row per position instead of its whole 16-position K block. Empty
    /// (default): read the cache.
    /// </summary>
    ReadOnlySpan<float> KeyRows(int layer) => default;
}

/// <summary>One layer of the KV cache as floats: K in <see cref="BlockedAttention"/>'s blocked layout, V position-major.</summary>
public readonly ref struct KvView
{
    public readonly ReadOnlySpan<float> K, V;
    public readonly int Capacity, Heads, KvHeads, HeadDim;
    /// <summary>Kernel threads a policy may use for its selection pass (the session's).</summary>
    public readonly int Threads;

    public KvView(ReadOnlySpan<float> k, ReadOnlySpan<float> v, int capacity, int heads, int kvHeads, int headDim, int threads = 1)
    {
        K = k; V = v; Capacity = capacity; Heads = heads; KvHeads = kvHeads; HeadDim = headDim; Threads = Math.Max(1, threads);
    }

    /// <summary>Query heads per K/V head.</summary>
    public int Group => Heads / KvHeads;

    /// <summary>K(kvHead, position, d).</summary>
    public float Key(int kvHead, int position, int d) => K[(int)BlockedAttention.Index(Capacity, HeadDim, kvHead, position, d)];

    /// <summary>q · K(kvHead, position) (q: one head's head_dim values).</summary>
    public float Dot(int kvHead, int position, ReadOnlySpan<float> q)
    {
        long at = BlockedAttention.Index(Capacity, HeadDim, kvHead, position, 0);
        float s = 0;
        for (int d = 0; d < HeadDim; d++) s += q[d] * K[(int)(at + d * BlockedAttention.Block)];
        return s;
    }
}
