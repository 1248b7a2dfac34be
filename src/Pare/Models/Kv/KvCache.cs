using Pare.Kernels;

namespace Pare.Models.Kv;

/// <summary>
/// A session's KV cache, per layer: K in <see cref="BlockedAttention"/>'s blocked layout, V position-major
/// (context, kv_heads * head_dim), stored as <see cref="KvValueType"/> says. <see cref="Attend"/> reads every type in
/// place where <see cref="BlockedAttention.FusedSupported"/> (AVX-512, head width a multiple of 32): the fused kernels
/// widen F16 / Q8_0 vectors as they load them. Elsewhere (and as the tests' reference) F16 and Q8_0 are decoded, one
/// layer at a time, into a float scratch of one layer's size before the F32 kernel reads it (<see cref="Read"/>).
/// </summary>
public sealed class KvCache
{
    readonly LlamaConfig _c;
    readonly float[][] _k = [], _v = [];        // F32
    readonly ushort[][] _kh = [], _vh = [];     // F16
    readonly sbyte[][] _kq = [];                // Q8_0 K values (blocked) ...
    readonly float[][] _ks = [];                // ... and their scales
    readonly byte[][] _vq = [];                 // Q8_0 V rows
    float[] _kScratch = [], _vScratch = [];
    readonly long _maxK, _maxV;

    public KvCache(LlamaConfig config, int capacity, KvValueType type)
    {
        _c = config;
        Capacity = capacity;
        Type = type;
        int layers = config.Layers;
        if (type == KvValueType.Q8_0 && config.HeadDim % 32 != 0)
            throw new PareException($"--kv-type q8_0 needs a head width that is a multiple of 32 (this model's is {config.HeadDim})");
        long maxK = 0, maxV = 0;
        for (int l = 0; l < layers; l++)
        {
            maxK = Math.Max(maxK, KFloats(l));
            maxV = Math.Max(maxV, VFloats(l));
        }
        switch (type)
        {
            case KvValueType.F32:
                _k = [.. Enumerable.Range(0, layers).Select(l => new float[KFloats(l)])];
                _v = [.. Enumerable.Range(0, layers).Select(l => new float[VFloats(l)])];
                break;
            case KvValueType.F16:
                _kh = [.. Enumerable.Range(0, layers).Select(l => new ushort[KFloats(l)])];
                _vh = [.. Enumerable.Range(0, layers).Select(l => new ushort[VFloats(l)])];
                break;
            case KvValueType.Q8_0:
                _kq = [.. Enumerable.Range(0, layers).Select(l => new sbyte[KFloats(l)])];
                _ks = [.. Enumerable.Range(0, layers).Select(l => new float[KvQuant.KScaleCount(capacity, _c.KvHeadsAt(l), _c.HeadDim)])];
                _vq = [.. Enumerable.Range(0, layers).Select(l => new byte[(long)capacity * KvQuant.Q8RowBytes(_c.KvDimAt(l))])];
                break;
            default: throw new ArgumentOutOfRangeException(nameof(type));
        }
        (_maxK, _maxV) = (maxK, maxV);
        Fused = type != KvValueType.F32 && BlockedAttention.FusedSupported(config.HeadDim);
    }

    /// <summary>Whether <see cref="Attend"/> reads the F16 / Q8_0 cache in place (no F32 scratch is allocated then).</summary>
    public bool Fused { get; }

    /// <summary>Positions the cache holds.</summary>
    public int Capacity { get; }
    public KvValueType Type { get; }

    /// <summary>Bytes one cached token takes across all layers (K and V; Q8_0 K scales counted as stored, 4 bytes each).</summary>
    public double BytesPerToken => Enumerable.Range(0, _c.Layers).Sum(l => 2.0 * _c.KvDimAt(l) * BytesPerValue(Type));

    /// <summary>Bytes the cache holds (all layers, at <see cref="Capacity"/>), plus the one-layer F32 scratch of F16/Q8_0
    /// where the fused kernels cannot run (or <see cref="Read"/> was called).</summary>
    public long Bytes
    {
        get
        {
            long stored = 0;
            for (int l = 0; l < _c.Layers; l++)
                stored += Type switch
                {
                    KvValueType.F32 => 4 * (KFloats(l) + VFloats(l)),
                    KvValueType.F16 => 2 * (KFloats(l) + VFloats(l)),
                    _ => KFloats(l) + 4 * KvQuant.KScaleCount(Capacity, _c.KvHeadsAt(l), _c.HeadDim) + (long)Capacity * KvQuant.Q8RowBytes(_c.KvDimAt(l)),
                };
            return stored + 4L * (_kScratch.Length + _vScratch.Length);
        }
    }

    /// <summary>Bytes per stored value: 4, 2, or 1 + a 4-byte K scale / 2-byte V scale per 32 values (K and V averaged).</summary>
    public static double BytesPerValue(KvValueType type) => type switch
    {
        KvValueType.F32 => 4,
        KvValueType.F16 => 2,
        _ => (1 + 4.0 / 32 + 1 + 2.0 / 32) / 2,
    };

    long KFloats(int l) => BlockedAttention.CacheFloats(Capacity, _c.KvHeadsAt(l), _c.HeadDim);
    long VFloats(int l) => (long)Capacity * _c.KvDimAt(l);

    /// <summary>Stores the n new tokens' k and v rows (n, kv_dim) of layer <paramref name="l"/> at positions pos0...</summary>
    public void Write(int l, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int n, int pos0)
    {
        int kvHeads = _c.KvHeadsAt(l), kvd = _c.KvDimAt(l), hd = _c.HeadDim;
        switch (Type)
        {
            case KvValueType.F32:
                BlockedAttention.WriteK(k, n, kvHeads, hd, _k[l], Capacity, pos0);
                v[..(n * kvd)].CopyTo(_v[l].AsSpan(pos0 * kvd, n * kvd));
                break;
            case KvValueType.F16:
                KvQuant.WriteKF16(k, n, kvHeads, hd, _kh[l], Capacity, pos0);
                KvQuant.WriteF16(v[..(n * kvd)], _vh[l].AsSpan(pos0 * kvd, n * kvd));
                break;
            default:
                KvQuant.WriteKQ8(k, n, kvHeads, hd, _kq[l], _ks[l], Capacity, pos0);
                int rb = KvQuant.Q8RowBytes(kvd);
                KvQuant.WriteQ8(v[..(n * kvd)], _vq[l].AsSpan(pos0 * rb, n * rb));
                break;
        }
    }

    /// <summary>Copies layer l's K and V at position <paramref name="from"/> to position <paramref name="to"/> (tree compaction).</summary>
    public void Move(int l, int from, int to)
    {
        int kvHeads = _c.KvHeadsAt(l), kvd = _c.KvDimAt(l), hd = _c.HeadDim;
        switch (Type)
        {
            case KvValueType.F32:
                BlockedAttention.MoveK(_k[l], Capacity, kvHeads, hd, from, to);
                Array.Copy(_v[l], (long)from * kvd, _v[l], (long)to * kvd, kvd);
                break;
            case KvValueType.F16:
                for (int h = 0; h < kvHeads; h++)
                    for (int d = 0; d < hd; d++)
                        _kh[l][BlockedAttention.Index(Capacity, hd, h, to, d)] = _kh[l][BlockedAttention.Index(Capacity, hd, h, from, d)];
                Array.Copy(_vh[l], (long)from * kvd, _vh[l], (long)to * kvd, kvd);
                break;
            default:
                KvQuant.MoveKQ8(_kq[l], _ks[l], Capacity, kvHeads, hd, from, to);
                int rb = KvQuant.Q8RowBytes(kvd);
                Array.Copy(_vq[l], (long)from * rb, _vq[l], (long)to * rb, rb);
                break;
        }
    }

    /// <summary>
    /// Layer l's K (blocked, sized for <see cref="Capacity"/>) and V (position-major) as floats, valid for the first
    /// <paramref name="positions"/> positions; for F16/Q8_0 the views share one scratch, good until the next call.
    /// </summary>
    public (ReadOnlyMemory<float> K, ReadOnlyMemory<float> V) Read(int l, int positions)
    {
        if (Type == KvValueType.F32) return (_k[l], _v[l]);
        if (_kScratch.Length == 0)
        {
            _kScratch = new float[_maxK];
            _vScratch = new float[_maxV];
        }
        int kvHeads = _c.KvHeadsAt(l), kvd = _c.KvDimAt(l), hd = _c.HeadDim;
        var k = _kScratch.AsMemory(0, (int)KFloats(l));
        var v = _vScratch.AsMemory(0, (int)VFloats(l));
        if (Type == KvValueType.F16)
        {
            KvQuant.ReadKF16(_kh[l], kvHeads, hd, Capacity, positions, k.Span);
            KvQuant.HalfToFloat(_vh[l].AsSpan(0, positions * kvd), v.Span);
        }
        else
        {
            KvQuant.ReadKQ8(_kq[l], _ks[l], kvHeads, hd, Capacity, positions, k.Span);
            KvQuant.ReadQ8(_vq[l].AsSpan(0, positions * KvQuant.Q8RowBytes(kvd)), v.Span[..(positions * kvd)]);
        }
        return (k, v);
    }

    /// <summary>
    /// Causal grouped-query attention of n new tokens (queries q, (n, heads * head_dim)) at positions pos0.. over layer
    /// <paramref name="l"/>'s first pos0 + n positions, into <paramref name="output"/>; a tree's <paramref name="parents"/>
    /// as in <see cref="BlockedAttention.CausalGqa"/>. <paramref name="fused"/>: false forces the decode-to-F32 path.
    /// </summary>
    public void Attend(int l, ReadOnlySpan<float> q, int n, int heads, int pos0, Span<float> output, int threads,
        ReadOnlySpan<int> parents = default, bool fused = true, int treeOffset = 0)
    {
        int kvHeads = _c.KvHeadsAt(l), hd = _c.HeadDim;
        // The fused kernels evaluate whole trees; a tree grown level by level (a draft session) goes through the F32 kernel.
        bool inPlace = fused && Fused && treeOffset == 0;
        if (inPlace && Type == KvValueType.F16)
            BlockedAttention.CausalGqaF16(q, n, heads, kvHeads, hd, _kh[l], Capacity, _vh[l], pos0, output, threads, parents);
        else if (inPlace && Type == KvValueType.Q8_0)
            BlockedAttention.CausalGqaQ8(q, n, heads, kvHeads, hd, _kq[l], _ks[l], Capacity, _vq[l], pos0, output, threads, parents);
        else
        {
            var (k, v) = Read(l, pos0 + treeOffset + n);
            BlockedAttention.CausalGqa(q, n, heads, kvHeads, hd, k.Span, Capacity, v.Span, pos0, output, threads, parents, treeOffset: treeOffset);
        }
    }
}
