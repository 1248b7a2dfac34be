using Pare.Kernels;
using Pare.Models;
using Pare.Models.Kv;

namespace Pare.LongContext.KvPolicies;

/// <summary>Quest settings (mit-han-lab/Quest: chunk_size 16, at least 3 pages, first 2 layers dense).</summary>
public sealed record QuestOptions
{
    /// <summary>Positions attended per query (top pages + the current pages).</summary>
    public int Budget { get; init; } = 1024;
    /// <summary>Positions per page.</summary>
    public int PageSize { get; init; } = 16;
    /// <summary>Fewest pages loaded.</summary>
    public int MinPages { get; init; } = 3;
    /// <summary>The first layers stay dense.</summary>
    public int DenseLayers { get; init; } = 2;
    /// <summary>One page selection per K/V head from the summed bounds of its query heads (grouped-query models: the group
    /// then reads each selected K block and V row once); false selects per query head, as the reference does on its
    /// multi-head models. The same thing when every query head has its own K/V head.</summary>
    public bool Grouped { get; init; } = true;
}

/// <summary>
/// <c>quest</c> (query-aware page selection): the cache is cut in pages of <see cref="QuestOptions.PageSize"/> positions,
/// each with the per-channel min and max of its keys (per K/V head, computed once per committed page); a page's score for
/// query q is Σ_d max(q_d·max_d, q_d·min_d), an upper bound of q·k in the page; each query head (by default each K/V
/// group, scores summed over its heads) reads its top pages plus the pages of the last <see cref="LocalWindow"/> positions.
/// </summary>
public sealed class QuestPolicy : IKvPolicy
{
    readonly QuestOptions _o;
    readonly Shape _s;
    readonly List<float[]>[][] _bounds;    // [layer][kvHead][page] = min (head_dim) then max (head_dim)

    public QuestPolicy(QuestOptions options, LlamaConfig config)
    {
        _o = options;
        _s = Shape.Of(config);
        _bounds = [.. Enumerable.Range(0, _s.Layers).Select(_ => Enumerable.Range(0, _s.KvHeads).Select(_ => new List<float[]>()).ToArray())];
    }

    public string Name => "quest";
    public int Budget => _o.Budget;
    public int LocalWindow => _o.PageSize;

    public int[][]? Select(int layer, int slot, ReadOnlySpan<float> query, int queryPosition, int prefix, in KvView kv)
    {
        int p = queryPosition, ps = _o.PageSize, hd = _s.HeadDim;
        if (layer < _o.DenseLayers || p <= Budget) return null;
        int localStart = Math.Max(0, (p - ps) / ps * ps), pages = localStart / ps;
        int k = Math.Max(_o.MinPages, (Budget - (p - localStart)) / ps);
        var local = KvPolicy.Range(localStart, p);
        var sel = new int[_s.Heads][];
        var scores = new float[pages];
        int per = _o.Grouped ? _s.Group : 1;   // query heads pooled into one selection
        for (int h0 = 0; h0 < _s.Heads; h0 += per)
        {
            int g = h0 / _s.Group;
            Array.Clear(scores);
            for (int h = h0; h < h0 + per; h++)
            {
                var q = query.Slice(h * hd, hd);
                for (int i = 0; i < pages; i++)
                {
                    var b = Bound(layer, g, i, prefix, kv);
                    scores[i] += SelectedAttention.BoundDot(q, b.AsSpan(0, hd), b.AsSpan(hd, hd));
                }
            }
            var top = KvPolicy.TopK(scores, k);
            var pos = new int[top.Length * ps + local.Length];
            int n = 0;
            foreach (int page in top) for (int j = 0; j < ps; j++) pos[n++] = page * ps + j;
            local.CopyTo(pos, n);
            for (int h = h0; h < h0 + per; h++) sel[h] = pos;
        }
        return sel;
    }

    /// <summary>Min/max keys of a page; cached once the page is committed.</summary>
    float[] Bound(int layer, int g, int page, int prefix, in KvView kv)
    {
        var list = _bounds[layer][g];
        if (page < list.Count) return list[page];
        int hd = _s.HeadDim, ps = _o.PageSize;
        var b = new float[2 * hd];
        for (int d = 0; d < hd; d++)
        {
            float mn = float.PositiveInfinity, mx = float.NegativeInfinity;
            for (int j = 0; j < ps; j++) { float v = kv.Key(g, page * ps + j, d); mn = Math.Min(mn, v); mx = Math.Max(mx, v); }
            b[d] = mn; b[hd + d] = mx;
        }
        if (page == list.Count && (page + 1) * ps <= prefix) list.Add(b);
        return b;
    }

    public void OnAppend(int layer, ReadOnlySpan<float> queries, int n, int pos0, in KvView kv) { }

    public void OnRewind(int position)
    {
        int keepPages = position / _o.PageSize;
        foreach (var layer in _bounds)
            foreach (var list in layer)
                if (list.Count > keepPages) list.RemoveRange(keepPages, list.Count - keepPages);
    }
}
