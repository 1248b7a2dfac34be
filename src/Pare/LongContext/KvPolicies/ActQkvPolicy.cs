using Pare.Models;
using Pare.Models.Kv;

namespace Pare.LongContext.KvPolicies;

/// <summary>ActQKV settings (MrXiaoaa/ActQKV: block 32, 4 representative keys per block, n_init 64, n_local 512), scaled to the
/// budget: n_init = min(64, Budget/8), n_local = min(512, max(32, Budget/4)), blocks = the rest / 32 on average per layer.</summary>
public sealed record ActQkvOptions
{
    /// <summary>Average positions attended per query; the block share is split across layers by attention entropy.</summary>
    public int Budget { get; init; } = 1024;
    public int BlockSize { get; init; } = 32;
    public int RepresentativeKeys { get; init; } = 4;
    public int NInit { get; init; } = 64;
    public int NLocal { get; init; } = 512;
    /// <summary>Sharpness of the block-score softmax whose entropy sets each layer's cut-off.</summary>
    public float Temperature { get; init; } = 0.1f;
}

/// <summary>
/// <c>actqkv</c>: activation-aware probe query and a dynamic per-layer cut-off over blocks of keys.
/// <list type="bullet">
/// <item>Activation bias: running per-channel mean μ and variance σ² of the layer's queries (committed tokens, frozen once
/// the committed context exceeds the budget); a head's query scores dev = mean_d (q_d − μ_d)² / (σ²_d + mean(σ²)/100), and
/// the probe of a K/V head is Σ w_h q_h over its query heads with w = dev / Σ dev (the anomalous heads dominate; the
/// reference weighs the tokens of a window, a decode step has one).</item>
/// <item>Blocks of <see cref="ActQkvOptions.BlockSize"/> positions, each with representative keys (the means of its
/// sub-blocks); a block's score is the best cosine of its representatives with the probe.</item>
/// <item>Dynamic cut-off: the normalized entropy H of softmax(scores / T) per layer; the layer loads
/// round(B · H / mean H of the layers so far in this token) blocks (B = the budget's block share, clamped to [1, 2B]).</item>
/// </list>
/// The question-weight term of the reference (a second probe from the question tokens) is not implemented.
/// </summary>
public sealed class ActQkvPolicy : IKvPolicy
{
    readonly ActQkvOptions _o;
    readonly Shape _s;
    readonly int _init, _local, _blocks;
    readonly double[][] _sum, _sumSq;         // [layer][q_dim]
    readonly long[] _count;
    readonly bool[] _frozen;
    readonly List<float[]>[][] _reps;         // [layer][kvHead][block] = representatives (r x head_dim)
    readonly Dictionary<int, (int Pos, double[] H)> _entropy = [];   // slot -> the token's position and H per layer

    public ActQkvPolicy(ActQkvOptions options, LlamaConfig config)
    {
        _o = options;
        _s = Shape.Of(config);
        _init = Math.Min(options.NInit, options.Budget / 8);
        _local = Math.Min(Math.Min(options.NLocal, Math.Max(32, options.Budget / 4)), options.Budget - _init);
        _blocks = Math.Max(1, (options.Budget - _init - _local) / options.BlockSize);
        int qd = _s.Heads * _s.HeadDim;
        _sum = [.. Enumerable.Range(0, _s.Layers).Select(_ => new double[qd])];
        _sumSq = [.. Enumerable.Range(0, _s.Layers).Select(_ => new double[qd])];
        _count = new long[_s.Layers];
        _frozen = new bool[_s.Layers];
        _reps = [.. Enumerable.Range(0, _s.Layers).Select(_ => Enumerable.Range(0, _s.KvHeads).Select(_ => new List<float[]>()).ToArray())];
    }

    public string Name => "actqkv";
    public int Budget => _o.Budget;
    public int LocalWindow => _local;

    public int[][]? Select(int layer, int slot, ReadOnlySpan<float> query, int queryPosition, int prefix, in KvView kv)
    {
        int p = queryPosition, hd = _s.HeadDim, bs = _o.BlockSize;
        if (p <= Budget || _count[layer] == 0) return null;
        int end = p - _local, first = (_init + bs - 1) / bs, last = end / bs;   // blocks [first, last) lie between init and local
        if (last <= first) return null;
        int qd = _s.Heads * hd;
        // Activation bias per query head.
        var mu = new double[qd];
        var var_ = new double[qd];
        double meanVar = 0;
        for (int i = 0; i < qd; i++)
        {
            mu[i] = _sum[layer][i] / _count[layer];
            var_[i] = Math.Max(0, _sumSq[layer][i] / _count[layer] - mu[i] * mu[i]);
            meanVar += var_[i] / qd;
        }
        var dev = new double[_s.Heads];
        for (int h = 0; h < _s.Heads; h++)
        {
            for (int d = 0; d < hd; d++)
            {
                int i = h * hd + d;
                double z = query[i] - mu[i];
                dev[h] += z * z / (var_[i] + meanVar / 100 + 1e-12);
            }
            dev[h] /= hd;
        }
        int nb = last - first;
        var scores = new float[_s.KvHeads][];
        double entropy = 0;
        for (int g = 0; g < _s.KvHeads; g++)
        {
            var probe = new float[hd];
            double wsum = 0;
            for (int h = g * _s.Group; h < (g + 1) * _s.Group; h++) wsum += dev[h];
            for (int h = g * _s.Group; h < (g + 1) * _s.Group; h++)
            {
                float w = wsum > 0 ? (float)(dev[h] / wsum) : 1f / _s.Group;
                for (int d = 0; d < hd; d++) probe[d] += w * query[h * hd + d];
            }
            var sc = scores[g] = new float[nb];
            for (int b = 0; b < nb; b++)
            {
                var reps = Reps(layer, g, first + b, prefix, kv);
                float best = float.NegativeInfinity;
                for (int r = 0; r < _o.RepresentativeKeys; r++) best = Math.Max(best, Cosine(reps.AsSpan(r * hd, hd), probe));
                sc[b] = best;
            }
            entropy += NormalizedEntropy(sc, _o.Temperature) / _s.KvHeads;
        }
        // Dynamic cut-off: this layer's share against the mean entropy of the layers so far (this token).
        double[] hs;
        if (_entropy.TryGetValue(slot, out var e) && e.Pos == p && layer > 0) hs = e.H;
        else _entropy[slot] = (p, hs = new double[_s.Layers]);
        hs[layer] = entropy;
        double mean = 0; int seen = 0;
        for (int l = 0; l <= layer; l++) if (hs[l] > 0) { mean += hs[l]; seen++; }
        mean = seen > 0 ? mean / seen : entropy;
        int k = Math.Clamp((int)Math.Round(_blocks * (mean > 0 ? entropy / mean : 1)), 1, 2 * _blocks);
        var head = KvPolicy.Range(0, _init);
        var tail = KvPolicy.Range(end, p);
        var sel = new int[_s.Heads][];
        for (int g = 0; g < _s.KvHeads; g++)
        {
            var top = KvPolicy.TopK(scores[g], k);
            var pos = new List<int>(head);
            foreach (int b in top)
                for (int j = (first + b) * bs; j < (first + b + 1) * bs; j++) if (j >= _init && j < end) pos.Add(j);
            pos.AddRange(tail);
            int[] arr = [.. pos];
            for (int h = g * _s.Group; h < (g + 1) * _s.Group; h++) sel[h] = arr;
        }
        return sel;
    }

    float[] Reps(int layer, int g, int block, int prefix, in KvView kv)
    {
        var list = _reps[layer][g];
        if (block < list.Count && list[block] != null) return list[block];
        int hd = _s.HeadDim, bs = _o.BlockSize, r = _o.RepresentativeKeys, sub = bs / r;
        var reps = new float[r * hd];
        for (int i = 0; i < r; i++)
            for (int j = 0; j < sub; j++)
                for (int d = 0; d < hd; d++) reps[i * hd + d] += kv.Key(g, block * bs + i * sub + j, d) / sub;
        if ((block + 1) * bs <= prefix)
        {
            while (list.Count <= block) list.Add(null!);
            list[block] = reps;
        }
        return reps;
    }

    static float Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double ab = 0, aa = 0, bb = 0;
        for (int i = 0; i < a.Length; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
        return (float)(ab / Math.Sqrt(aa * bb + 1e-30));
    }

    static double NormalizedEntropy(float[] scores, float temperature)
    {
        if (scores.Length < 2) return 1;
        float max = scores.Max();
        double sum = 0, h = 0;
        foreach (float s in scores) sum += Math.Exp((s - max) / temperature);
        foreach (float s in scores)
        {
            double pr = Math.Exp((s - max) / temperature) / sum;
            if (pr > 0) h -= pr * Math.Log(pr);
        }
        return h / Math.Log(scores.Length);
    }

    public void OnAppend(int layer, ReadOnlySpan<float> queries, int n, int pos0, in KvView kv)
    {
        if (_frozen[layer]) return;
        int qd = _s.Heads * _s.HeadDim;
        for (int t = 0; t < n; t++)
            for (int i = 0; i < qd; i++) { double x = queries[t * qd + i]; _sum[layer][i] += x; _sumSq[layer][i] += x * x; }
        _count[layer] += n;
        if (pos0 + n > Budget) _frozen[layer] = true;
    }

    public void OnRewind(int position)
    {
        foreach (var layer in _reps)
            foreach (var list in layer)
            {
                int keep = Math.Min(list.Count, position / _o.BlockSize);
                list.RemoveRange(keep, list.Count - keep);
            }
        if (position == 0)
        {
            foreach (var a in _sum) Array.Clear(a);
            foreach (var a in _sumSq) Array.Clear(a);
            Array.Clear(_count);
            Array.Clear(_frozen);
        }
        _entropy.Clear();
    }
}
