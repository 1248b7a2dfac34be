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
    /// <summary>Token embeddings (n, dim).</summary>
    internal float[] Embed(ReadOnlySpan<int> tokens)
    {
        var w = _model.Weights;
        var x = new float[tokens.Length * _c.Dim];
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
        Span<float> cos = stackalloc float[half], sin = stackalloc float[half];
        for (int t = 0; t < n; t++)
        {
            if (lw.Bq != null) AddInPlace(q.Slice(t * qd, qd), lw.Bq);
            if (lw.Bk != null) AddInPlace(k.Slice(t * kvd, kvd), lw.Bk);
            if (lw.Bv != null) AddInPlace(v.Slice(t * kvd, kvd), lw.Bv);
            Ops.RopeAngles(positions[t], _c.RopeDim, _c.RopeBase, cos, sin);
            Ops.Rope(q.Slice(t * qd, qd), heads, hd, cos, sin, _c.RopeLayout);
            Ops.Rope(k.Slice(t * kvd, kvd), kvHeads, hd, cos, sin, _c.RopeLayout);
            _kv.Write(layer, k.Slice(t * kvd, kvd), v.Slice(t * kvd, kvd), 1, positions[t]);
        }
        if (!lastQuery.IsEmpty) q.Slice((n - lastQuery.Length / qd) * qd, lastQuery.Length / qd * qd).CopyTo(lastQuery);
        var att = _att.AsSpan(0, n * qd);
        if (compact)
        {
            var kc = new float[BlockedAttention.CacheFloats(n, kvHeads, hd)];
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
