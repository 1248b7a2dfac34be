using Pare.Kernels;
using Pare.Models;
using Pare.Models.Kv;

namespace Pare.LongContext.KvPolicies;

/// <summary>H2O settings (FMInference/H2O: heavy_ratio 0.1 + recent_ratio 0.1 of the prompt, i.e. an even split).</summary>
public sealed record H2oOptions
{
    /// <summary>Positions attended per query (heavy hitters + recent).</summary>
    public int Budget { get; init; } = 1024;
    /// <summary>Share of the budget for the most recent positions; the rest goes to heavy hitters (reference: 0.1 / 0.2 = 0.5).</summary>
    public double RecentShare { get; init; } = 0.5;
}

/// <summary>
/// <c>h2o</c> (heavy hitters): per head, the attention each position has received, summed over all committed queries so
/// far; a query reads the top heavy-hitter positions by that score plus the most recent ones. A committed query's attention
/// is folded into the scores once it is older than the recent window (it is in every later query's window until then),
/// so the selection depends on committed tokens only and tree verification stays exact.
/// </summary>
public sealed class H2oPolicy : IKvPolicy
{
    readonly H2oOptions _o;
    readonly Shape _s;
    readonly int _recent, _heavy;
    readonly float[][][] _scores;                          // [layer][head][position]
    readonly Queue<(int Pos, float[] Q)>[] _pending;       // committed queries not folded yet, per layer

    public H2oPolicy(H2oOptions options, LlamaConfig config)
    {
        _o = options;
        _s = Shape.Of(config);
        _recent = Math.Max(1, (int)Math.Round(options.Budget * options.RecentShare));
        _heavy = options.Budget - _recent;
        _scores = [.. Enumerable.Range(0, _s.Layers).Select(_ => new float[_s.Heads][])];
        _pending = [.. Enumerable.Range(0, _s.Layers).Select(_ => new Queue<(int, float[])>())];
    }

    public string Name => "h2o";
    public int Budget => _o.Budget;
    public int LocalWindow => _recent;

    public int[][]? Select(int layer, int slot, ReadOnlySpan<float> query, int queryPosition, int prefix, in KvView kv)
    {
        Fold(layer, queryPosition - _recent, kv);
        return Selection(layer, queryPosition, kv);
    }

    int[][]? Selection(int layer, int p, in KvView kv)
    {
        if (p <= Budget) return null;
        var sel = new int[_s.Heads][];
        var recent = KvPolicy.Range(p - _recent, p);
        for (int h = 0; h < _s.Heads; h++)
        {
            var sc = Scores(layer, h, kv.Capacity).AsSpan(0, p - _recent);
            sel[h] = [.. KvPolicy.TopK(sc, _heavy), .. recent];
        }
        return sel;
    }

    float[] _w = [];

    float[] Scores(int layer, int h, int capacity) => _scores[layer][h] ??= new float[capacity];

    /// <summary>Adds the attention of every pending query at a position below <paramref name="before"/> to the scores.</summary>
    void Fold(int layer, int before, in KvView kv)
    {
        var q = _pending[layer];
        int hd = _s.HeadDim;
        while (q.Count > 0 && q.Peek().Pos < before)
        {
            var (j, qj) = q.Dequeue();
            var sel = Selection(layer, j, kv);
            for (int h = 0; h < _s.Heads; h++)
            {
                int[] pos = sel == null ? KvPolicy.Range(0, j + 1) : [.. sel[h], j];
                if (_w.Length < pos.Length) _w = new float[pos.Length];
                SelectedAttention.Weights(qj.AsSpan(h * hd, hd), kv.K, kv.Capacity, _s.KvHeads, hd, h / _s.Group, pos, _w);
                var sc = Scores(layer, h, kv.Capacity);
                for (int i = 0; i < pos.Length; i++) sc[pos[i]] += _w[i];
            }
        }
    }

    public void OnAppend(int layer, ReadOnlySpan<float> queries, int n, int pos0, in KvView kv)
    {
        int qd = _s.Heads * _s.HeadDim;
        for (int t = 0; t < n; t++) _pending[layer].Enqueue((pos0 + t, queries.Slice(t * qd, qd).ToArray()));
    }

    /// <summary>Drops the rewound queries and the scores of rewound positions (attention already folded from a rewound query
    /// into earlier positions stays: H2O has no way to take it back).</summary>
    public void OnRewind(int position)
    {
        for (int l = 0; l < _s.Layers; l++)
        {
            var kept = _pending[l].Where(x => x.Pos < position).ToArray();
            _pending[l].Clear();
            foreach (var x in kept) _pending[l].Enqueue(x);
            foreach (var sc in _scores[l])
                if (sc != null) Array.Clear(sc, Math.Min(position, sc.Length), sc.Length - Math.Min(position, sc.Length));
        }
    }
}
