using Pare.Models;
using Pare.Models.Kv;

namespace Pare.LongContext.KvPolicies;

/// <summary>SnapKV settings (FasterDecoding/SnapKV defaults: window 32, kernel 5, average pooling).</summary>
public sealed record SnapKvOptions
{
    /// <summary>Prompt positions kept per head (max_capacity_prompt): votes' top (Budget − Window) + the observation window.</summary>
    public int Budget { get; init; } = 1024;
    /// <summary>Observation window: the last prompt queries whose attention votes.</summary>
    public int Window { get; init; } = 32;
    /// <summary>1-D pooling kernel over the votes (odd).</summary>
    public int Kernel { get; init; } = 5;
    /// <summary>Max pooling instead of average pooling.</summary>
    public bool MaxPool { get; init; }
}

/// <summary>
/// <c>snapkv</c>: once the committed prompt exceeds the budget (after prefill), the attention of its last
/// <see cref="SnapKvOptions.Window"/> queries over the earlier positions is summed per head, pooled, and each head keeps its
/// top Budget − Window positions plus the window, for good. Tokens generated after that are all kept, as in SnapKV (which
/// compresses the prompt only).
/// </summary>
public sealed class SnapKvPolicy : IKvPolicy
{
    readonly SnapKvOptions _o;
    readonly Shape _s;
    readonly List<(int Pos, float[] Q)>[] _recent;     // last Window committed queries per layer
    readonly int[][]?[] _kept;                          // [layer][head] kept prompt positions once frozen
    readonly int[] _frozenAt;

    public SnapKvPolicy(SnapKvOptions options, LlamaConfig config)
    {
        _o = options;
        _s = Shape.Of(config);
        _recent = [.. Enumerable.Range(0, _s.Layers).Select(_ => new List<(int, float[])>())];
        _kept = new int[][]?[_s.Layers];
        _frozenAt = new int[_s.Layers];
    }

    public string Name => "snapkv";
    public int Budget => _o.Budget;
    public int LocalWindow => Math.Min(_o.Window, _o.Budget / 2);

    public int[][]? Select(int layer, int slot, ReadOnlySpan<float> query, int queryPosition, int prefix, in KvView kv)
    {
        if (queryPosition <= Budget || _kept[layer] is not { } kept) return null;
        var after = KvPolicy.Range(_frozenAt[layer], queryPosition);
        var sel = new int[_s.Heads][];
        for (int h = 0; h < _s.Heads; h++) sel[h] = [.. kept[h], .. after];
        return sel;
    }

    public void OnAppend(int layer, ReadOnlySpan<float> queries, int n, int pos0, in KvView kv)
    {
        int qd = _s.Heads * _s.HeadDim, w = LocalWindow;
        var r = _recent[layer];
        for (int t = Math.Max(0, n - w); t < n; t++) r.Add((pos0 + t, queries.Slice(t * qd, qd).ToArray()));
        if (r.Count > w) r.RemoveRange(0, r.Count - w);
        if (_kept[layer] == null && pos0 + n > Budget) Freeze(layer, pos0 + n, kv);
    }

    void Freeze(int layer, int p0, in KvView kv)
    {
        var obs = _recent[layer];
        int w = obs.Count, candidates = p0 - w, hd = _s.HeadDim, keep = Budget - w;
        float scale = 1f / MathF.Sqrt(hd);
        var kept = new int[_s.Heads][];
        var window = KvPolicy.Range(candidates, p0);
        for (int h = 0; h < _s.Heads; h++)
        {
            var votes = new float[candidates];
            foreach (var (pos, q) in obs)
            {
                var qh = q.AsSpan(h * hd, hd);
                var a = new float[pos + 1];
                float max = float.NegativeInfinity, sum = 0;
                for (int i = 0; i <= pos; i++) { a[i] = kv.Dot(h / _s.Group, i, qh) * scale; max = Math.Max(max, a[i]); }
                for (int i = 0; i <= pos; i++) { a[i] = MathF.Exp(a[i] - max); sum += a[i]; }
                for (int i = 0; i < candidates; i++) votes[i] += a[i] / sum;
            }
            kept[h] = [.. KvPolicy.TopK(Pool(votes), keep), .. window];
        }
        _kept[layer] = kept;
        _frozenAt[layer] = p0;
    }

    /// <summary>Same-size 1-D pooling (kernel k, padding k/2), as F.avg_pool1d / max_pool1d with stride 1.</summary>
    float[] Pool(float[] x)
    {
        int r = _o.Kernel / 2;
        var y = new float[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            float acc = _o.MaxPool ? float.NegativeInfinity : 0;
            for (int j = i - r; j <= i + r; j++)
            {
                float v = j >= 0 && j < x.Length ? x[j] : (_o.MaxPool ? float.NegativeInfinity : 0);
                acc = _o.MaxPool ? Math.Max(acc, v) : acc + v;
            }
            y[i] = _o.MaxPool ? acc : acc / _o.Kernel;
        }
        return y;
    }

    public void OnRewind(int position)
    {
        for (int l = 0; l < _s.Layers; l++)
        {
            _recent[l].RemoveAll(x => x.Pos >= position);
            if (_kept[l] != null && position < _frozenAt[l]) _kept[l] = null;
        }
    }
}
