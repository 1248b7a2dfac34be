using Pare.Kernels;
using Pare.Models;
using Pare.Models.Kv;

namespace Pare.LongContext.KvPolicies;

/// <summary>TokenSelect settings (pzs19/TokenSelect Llama-3 config: n_init 128, n_local 512, top_k 2048; selection cache
/// off, threshold 0.9), scaled to the budget: n_init = min(128, Budget/8), n_local = min(512, max(16, Budget/4)), top_k = the rest.</summary>
public sealed record TokenSelectOptions
{
    /// <summary>Positions attended per query (n_init + top_k + n_local).</summary>
    public int Budget { get; init; } = 1024;
    public int NInit { get; init; } = 128;
    public int NLocal { get; init; } = 512;
    /// <summary>Reuse the layer's previous selection while consecutive queries are similar (cosine ≥ <see cref="CacheThreshold"/>).
    /// Off by default as in the released patch(); with it on, the selection depends on the previous query, so tree verification
    /// is no longer exactly plain decoding.</summary>
    public bool SelectionCache { get; init; }
    public double CacheThreshold { get; init; } = 0.9;
    /// <summary>RoPE over the gathered sequence (n_init + top-k + n_local at positions 0..Budget-1, the query at Budget), as the
    /// reference does with pre-RoPE keys; this is what lets it run past the trained context (length extrapolation). On by
    /// default (the reference's behaviour); false = keys keep their true positions (<c>--kv-renumber off</c>).</summary>
    public bool Renumber { get; init; } = true;
    /// <summary>Score the candidates from a quantized copy of K (<see cref="KeySketch"/>, <see cref="SketchBits"/> per value:
    /// one scale per position and K/V head, an eighth or a quarter of F32 K's bytes) instead of the F32 cache: the pass over
    /// every candidate is memory-bound, so it reads that fraction. Only the ranking is approximate; attention over the selected positions stays exact F32. On by default (the
    /// needle accuracy is kept, docs/long-context.md); false = the reference's F32 scores (<c>--kv-scores f32</c>).</summary>
    public bool Int8Scores { get; init; } = true;
    /// <summary>Bits per value of that sketch: 4 (default since session 16: an eighth of F32 K's bytes, values -7..7; same
    /// needle accuracy as 8 bits, a faster selection at long contexts, docs/long-context.md) or 8 (<c>--kv-scores int8</c>).</summary>
    public int SketchBits { get; init; } = 4;
    /// <summary>Keep a position-major F32 copy of K (<see cref="IKvPolicy.KeyRows"/>) so that attention reads one row per
    /// selected position and K/V head instead of its whole 16-position block. Same values, so same results; costs the K
    /// cache's size again. On by default.</summary>
    public bool KeyRows { get; init; } = true;
}

/// <summary>
/// <c>tokenselect</c>: per head, the criticality of every candidate position (between the first n_init and the last n_local)
/// is q·k; soft voting: a softmax over the candidates per head, summed over the heads; the top_k positions by votes, shared
/// by all heads of the layer, plus the first n_init and last n_local. By default the scores come from an int8 sketch of K
/// and the attention reads position-major K rows (<see cref="TokenSelectOptions.Int8Scores"/>, <see cref="TokenSelectOptions.KeyRows"/>):
/// copies the policy keeps per layer, filled from the cache as positions are committed.
/// </summary>
public sealed class TokenSelectPolicy : IKvPolicy
{
    readonly TokenSelectOptions _o;
    readonly Shape _s;
    readonly int _init, _local, _topK;
    readonly (float[] Q, int[] Sel, int End)?[] _cache;
    readonly Copies?[] _copies;
    readonly long[] _layerSelections, _layerHits;
    float[] _logits = [], _votes = [];

    /// <summary>A layer's copies of K: the int8 sketch valid below SketchEnd, the F32 rows below RowsEnd.</summary>
    sealed class Copies
    {
        public sbyte[] Sketch = [];
        public float[] Scales = [], Rows = [];
        public int SketchEnd, RowsEnd;
    }

    public TokenSelectPolicy(TokenSelectOptions options, LlamaConfig config)
    {
        _o = options;
        _s = Shape.Of(config);
        _init = Math.Min(options.NInit, options.Budget / 8);
        _local = Math.Min(Math.Min(options.NLocal, Math.Max(16, options.Budget / 4)), options.Budget - _init);
        _topK = options.Budget - _init - _local;
        _cache = new (float[], int[], int)?[_s.Layers];
        _copies = new Copies?[_s.Layers];
        _layerSelections = new long[_s.Layers];
        _layerHits = new long[_s.Layers];
    }

    public string Name => "tokenselect";
    public int Budget => _o.Budget;
    public int LocalWindow => _local;
    public bool Renumber => _o.Renumber;
    /// <summary>Selections made so far (one per layer and query past the budget), cached or not.</summary>
    public long Selections => _layerSelections.Sum();
    /// <summary>Selections served from the selection cache so far.</summary>
    public long CacheHits => _layerHits.Sum();
    /// <summary>CacheHits / Selections (0 before any selection); null when the selection cache is off.</summary>
    public double? CacheHitRate => !_o.SelectionCache ? null : (double)CacheHits / Math.Max(1, Selections);
    /// <summary><see cref="Selections"/> per layer.</summary>
    public IReadOnlyList<long> LayerSelections => _layerSelections;
    /// <summary><see cref="CacheHits"/> per layer.</summary>
    public IReadOnlyList<long> LayerCacheHits => _layerHits;
    /// <summary>Bytes of the K copies kept so far (int8 sketch and scales, F32 rows), every layer.</summary>
    public long CopyBytes => _copies.Sum(c => c == null ? 0L : c.Sketch.Length + 4L * (c.Scales.Length + c.Rows.Length));

    public int[][]? Select(int layer, int slot, ReadOnlySpan<float> query, int queryPosition, int prefix, in KvView kv)
    {
        int p = queryPosition, hd = _s.HeadDim;
        if (p <= Budget) return null;
        int end = p - _local;
        var copies = _copies[layer] ??= new Copies();
        if (_o.KeyRows) SyncRows(copies, prefix, kv);
        int[] top;
        _layerSelections[layer]++;
        if (_o.SelectionCache && _cache[layer] is { } c && Cosine(c.Q, query) >= _o.CacheThreshold)
        {
            _layerHits[layer]++;
            top = [.. c.Sel, .. KvPolicy.Range(c.End, end)];   // positions that left the local window since stay candidates
            top = top.Length > _topK ? top[^_topK..] : top;
        }
        else
        {
            int n = end - _init;
            if (_votes.Length < n) _votes = new float[n];   // kept: per layer and token, a 63 KB array at 16k
            var votes = _votes.AsSpan(0, n);
            if (_logits.Length < _s.Heads * n) _logits = new float[_s.Heads * n];
            if (_o.Int8Scores)
            {
                SyncSketch(copies, prefix, end, kv);
                // Scores, each head's softmax and their sum in one pass where it can (KeySketch.Votes).
                KeySketch.Votes(query, _s.Heads, _s.KvHeads, hd, copies.Sketch, copies.Scales, kv.Capacity, _init, end, _logits, votes, kv.Threads, _o.SketchBits);
            }
            else
            {
                SelectedAttention.Logits(query, _s.Heads, _s.KvHeads, hd, kv.K, kv.Capacity, _init, end, _logits, kv.Threads);
                SoftVotes.Compute(_logits, _s.Heads, n, votes, kv.Threads);   // each head's softmax over the candidates, summed
            }
            top = KvPolicy.TopK(votes, _topK);
            for (int i = 0; i < top.Length; i++) top[i] += _init;
            if (_o.SelectionCache) _cache[layer] = (query.ToArray(), top, end);
        }
        return KvPolicy.Shared(_s.Heads, [.. KvPolicy.Range(0, _init), .. top, .. KvPolicy.Range(end, p)]);
    }

    static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double ab = 0, aa = 0, bb = 0;
        for (int i = 0; i < a.Length; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
        return ab / Math.Sqrt(aa * bb + 1e-30);
    }

    /// <summary>Rows of the committed positions not copied yet (a decode step adds one).</summary>
    static void SyncRows(Copies c, int prefix, in KvView kv)
    {
        if (c.Rows.Length == 0) c.Rows = new float[(long)kv.Capacity * kv.KvHeads * kv.HeadDim];
        if (prefix > c.RowsEnd) BlockedAttention.ReadK(kv.K, kv.Capacity, kv.KvHeads, kv.HeadDim, c.RowsEnd, prefix, c.Rows);
        c.RowsEnd = prefix;
    }

    /// <summary>The sketch of the candidates up to <paramref name="end"/>; a prefill chunk's own positions (from
    /// <paramref name="prefix"/> on) are not committed yet, so they are quantized again next time.</summary>
    void SyncSketch(Copies c, int prefix, int end, in KvView kv)
    {
        if (c.Sketch.Length == 0)
        {
            c.Sketch = new sbyte[KeySketch.SketchBytes(kv.Capacity, kv.KvHeads, kv.HeadDim, _o.SketchBits)];
            c.Scales = new float[KeySketch.ScaleCount(kv.Capacity, kv.KvHeads)];
        }
        if (end > c.SketchEnd) KeySketch.Quantize(kv.K, kv.Capacity, kv.KvHeads, kv.HeadDim, c.SketchEnd, end, c.Sketch, c.Scales, _o.SketchBits);
        c.SketchEnd = Math.Max(c.SketchEnd, Math.Min(end, prefix));
    }

    public ReadOnlySpan<float> KeyRows(int layer) => _o.KeyRows && _copies[layer] is { } c ? c.Rows : default;

    public void OnAppend(int layer, ReadOnlySpan<float> queries, int n, int pos0, in KvView kv) { }

    public void OnRewind(int position)
    {
        Array.Clear(_cache);
        foreach (var c in _copies)
            if (c != null) { c.SketchEnd = Math.Min(c.SketchEnd, position); c.RowsEnd = Math.Min(c.RowsEnd, position); }
    }
}
