using Pare.Kernels;
using Pare.Models.Kv;
using Pare.Tensors;

namespace Pare.Models;

/// <summary>
/// Layer-at-a-time access for prefill-time token pruning (LazyLLM, Pare.LongContext.LazyLlm): embed tokens, run one block
/// over tokens at arbitrary positions, read the head. The ordinary <see cref="InferenceSession.Forward(ReadOnlySpan{int})"/>
/// path does not use it.
/// </summary>
public sealed partial class InferenceSession
{
    // Layer-at-a-time scratch: RoPE angles by position (grown on demand) and the compacted K of a pruned sequence.
    float[] _ropeTableCos = [], _ropeTableSin = [], _kCompact = [];

    /// <summary>Token embeddings (n, dim).</summary>
    internal float[] Embed(ReadOnlySpan<int> tokens)
    {
        var w = _model.Weights;
        var x = GC.AllocateUninitializedArray<float>(tokens.Length * _c.Dim);   // every row is written below
        for (int t = 0; t < tokens.Length; t++)
        {
            if ((uint)tokens[t] >= (uint)_c.VocabSize) throw new PareException($"token id {tokens[t]} is out of range (vocabulary size {_c.VocabSize})");
            Dequant.Row(w.TokenEmbedding.Type, w.TokenEmbedding.Row(tokens[t]), x.AsSpan(t * _c.Dim, _c.Dim));
        }
        return x;
    }

    /// <summary>
    /// Runs block <paramref name="layer"/> on hidden states x (n, dim) of tokens at <paramref name="positions"/> (ascending),
    /// in place, and stores their K/V at those positions. <paramref name="compact"/>: the tokens attend causally to each other
    /// only (a pruned sequence; dense kernel over a compacted copy); otherwise each attends to every cached position up to its
    /// own (the cache must hold them at this layer). <paramref name="lastQuery"/>, if not empty, receives the queries after RoPE
    /// of the last lastQuery.Length / (heads x head_dim) tokens (LazyLLM's observation window; the last token last).
    /// </summary>
    internal void ForwardBlock(int layer, Span<float> x, ReadOnlySpan<int> positions, bool compact, Span<float> lastQuery = default)
    {
        int n = positions.Length, dim = _c.Dim, hd = _c.HeadDim, half = _c.RopeDim / 2;
        Ensure(n);
        var lw = _model.Weights.Layers[layer];
        int heads = _c.HeadsAt(layer), kvHeads = _c.KvHeadsAt(layer), qd = heads * hd, kvd = kvHeads * hd, ffn = _c.FfnAt(layer);
        var xb = _xb.AsSpan(0, n * dim);
        for (int t = 0; t < n; t++) Ops.RmsNorm(x.Slice(t * dim, dim), lw.AttnNorm, _c.RmsEps, xb.Slice(t * dim, dim));
        var q = _qkv.AsSpan(0, n * qd);
        var k = _qkv.AsSpan(n * qd, n * kvd);
        var v = _qkv.AsSpan(n * (qd + kvd), n * kvd);
        MatMul.MatMulRowsFused(_qkvWeights[layer], xb, n, _qkv.AsSpan(0, n * (qd + 2 * kvd)), _threads);
        var (cosAll, sinAll) = RopeTable(positions[n - 1] + 1);
        for (int t = 0; t < n; t++)
        {
            if (lw.Bq != null) AddInPlace(q.Slice(t * qd, qd), lw.Bq);
            if (lw.Bk != null) AddInPlace(k.Slice(t * kvd, kvd), lw.Bk);
            if (lw.Bv != null) AddInPlace(v.Slice(t * kvd, kvd), lw.Bv);
            var cos = cosAll.AsSpan(positions[t] * half, half);
            var sin = sinAll.AsSpan(positions[t] * half, half);
            Ops.Rope(q.Slice(t * qd, qd), heads, hd, cos, sin, _c.RopeLayout);
            Ops.Rope(k.Slice(t * kvd, kvd), kvHeads, hd, cos, sin, _c.RopeLayout);
        }
        // One cache write per run of consecutive positions (the whole batch before the first pruning layer).
        for (int t = 0, e; t < n; t = e)
        {
            for (e = t + 1; e < n && positions[e] == positions[e - 1] + 1; e++) { }
            _kv.Write(layer, k.Slice(t * kvd, (e - t) * kvd), v.Slice(t * kvd, (e - t) * kvd), e - t, positions[t]);
        }
        if (!lastQuery.IsEmpty) q.Slice((n - lastQuery.Length / qd) * qd, lastQuery.Length / qd * qd).CopyTo(lastQuery);
        var att = _att.AsSpan(0, n * qd);
        if (compact)
        {
            // The compacted K in a reused scratch (a fresh array per layer cost page faults and GC); cleared so the
            // last block's unused positions are zeros, as in a fresh one.
            long kcn = BlockedAttention.CacheFloats(n, kvHeads, hd);
            if (_kCompact.Length < kcn) _kCompact = new float[kcn];
            var kc = _kCompact.AsSpan(0, (int)kcn);
            kc.Clear();
            BlockedAttention.WriteK(k, n, kvHeads, hd, kc, n, 0);
            BlockedAttention.CausalGqa(q, n, heads, kvHeads, hd, kc, n, v, 0, att, _threads);
        }
        else
        {
            var (kCache, vCache) = _kv.Read(layer, positions[n - 1] + 1);
            var every = System.Linq.Enumerable.Range(0, positions[n - 1] + 1).ToArray();
            var prefix = new int[heads][];
            var counts = new int[heads];
            Array.Fill(prefix, every);
            for (int t = 0; t < n; t++)
            {
                Array.Fill(counts, positions[t] + 1);   // the same positions for every head: K/V groups scored together
                SelectedAttention.AttendHeads(q.Slice(t * qd, qd), heads, kvHeads, hd, kCache.Span, ContextLength, vCache.Span, prefix, counts,
                    default, att.Slice(t * qd, qd), _threads);
            }
        }
        var o = _o.AsSpan(0, n * dim);
        MatMul.MatMulRows(lw.Wo, att, n, o, _threads);
        if (lw.Bo != null) AddBias(o, lw.Bo, n);
        AddInPlace(x[..(n * dim)], o);
        for (int t = 0; t < n; t++) Ops.RmsNorm(x.Slice(t * dim, dim), lw.FfnNorm, _c.RmsEps, xb.Slice(t * dim, dim));
        var gate = _gateUp.AsSpan(0, n * ffn);
        var up = _gateUp.AsSpan(n * ffn, n * ffn);
        MatMul.MatMulRowsFused(_gateUpWeights[layer], xb, n, _gateUp.AsSpan(0, 2 * n * ffn), _threads);
        Ops.SwiGlu(gate, up);
        MatMul.MatMulRows(lw.Down, gate, n, o, _threads);
        if (lw.BDown != null) AddBias(o, lw.BDown, n);
        AddInPlace(x[..(n * dim)], o);
    }

    /// <summary>
    /// Layer <paramref name="layer"/>'s keys after RoPE, (n, kv_dim), of hidden states x (n, dim) at <paramref name="positions"/>,
    /// and in <paramref name="lastQuery"/> the queries after RoPE of the last lastQuery.Length / (heads x head_dim) tokens, as
    /// <see cref="ForwardBlock"/> computes them, without running the block: x and the cache are untouched (LazyLLM's
    /// same-layer importance scores the keys the layer is about to attend over, then runs it on the kept tokens only).
    /// </summary>
    internal float[] LayerKeys(int layer, ReadOnlySpan<float> x, ReadOnlySpan<int> positions, Span<float> lastQuery)
    {
        int n = positions.Length, dim = _c.Dim, hd = _c.HeadDim, half = _c.RopeDim / 2;
        Ensure(n);
        var lw = _model.Weights.Layers[layer];
        int heads = _c.HeadsAt(layer), kvHeads = _c.KvHeadsAt(layer), qd = heads * hd, kvd = kvHeads * hd, m = lastQuery.Length / qd;
        var xb = _xb.AsSpan(0, n * dim);
        for (int t = 0; t < n; t++) Ops.RmsNorm(x.Slice(t * dim, dim), lw.AttnNorm, _c.RmsEps, xb.Slice(t * dim, dim));
        var k = GC.AllocateUninitializedArray<float>(n * kvd);   // every row is written below
        MatMul.MatMulRows(lw.Wk, xb, n, k, _threads);
        MatMul.MatMulRows(lw.Wq, xb[((n - m) * dim)..], m, lastQuery[..(m * qd)], _threads);
        var (cosAll, sinAll) = RopeTable(positions[n - 1] + 1);
        for (int t = 0; t < n; t++)
        {
            if (lw.Bk != null) AddInPlace(k.AsSpan(t * kvd, kvd), lw.Bk);
            Ops.Rope(k.AsSpan(t * kvd, kvd), kvHeads, hd, cosAll.AsSpan(positions[t] * half, half), sinAll.AsSpan(positions[t] * half, half), _c.RopeLayout);
        }
        for (int w = 0; w < m; w++)
        {
            int p = positions[n - m + w];
            var qw = lastQuery.Slice(w * qd, qd);
            if (lw.Bq != null) AddInPlace(qw, lw.Bq);
            Ops.Rope(qw, heads, hd, cosAll.AsSpan(p * half, half), sinAll.AsSpan(p * half, half), _c.RopeLayout);
        }
        return k;
    }

    /// <summary>cos and sin of the RoPE angles of positions 0 .. <paramref name="positions"/> - 1, (positions, rope_dim / 2) each:
    /// computed once per session and position (as <see cref="Ops.RopeAngles"/>, so bitwise the same), not per layer and token.</summary>
    (float[] Cos, float[] Sin) RopeTable(int positions)
    {
        int half = _c.RopeDim / 2, have = _ropeTableCos.Length / Math.Max(half, 1);
        if (positions > have)
        {
            int grow = Math.Max(positions, Math.Min(ContextLength, 2 * have));
            Array.Resize(ref _ropeTableCos, grow * half);
            Array.Resize(ref _ropeTableSin, grow * half);
            for (int p = have; p < grow; p++)
                Ops.RopeAngles(p, _c.RopeDim, _c.RopeBase, _ropeTableCos.AsSpan(p * half, half), _ropeTableSin.AsSpan(p * half, half));
        }
        return (_ropeTableCos, _ropeTableSin);
    }

    /// <summary>Logits (vocab) of one final hidden state (dim).</summary>
    internal float[] Head(ReadOnlySpan<float> h)
    {
        var w = _model.Weights;
        var xo = new float[_c.Dim];
        Ops.RmsNorm(h, w.OutputNorm, _c.RmsEps, xo);
        var logits = new float[_c.VocabSize];
        MatMul.MatMulRows(w.Output, xo, 1, logits, _threads);
        return logits;
    }

    /// <summary>Sets <see cref="Position"/> after layer-at-a-time evaluation filled the cache up to it.</summary>
    internal void SetPosition(int position)
    {
        if (position < 0 || position > ContextLength) throw new ArgumentOutOfRangeException(nameof(position));
        Position = position;
    }
}
