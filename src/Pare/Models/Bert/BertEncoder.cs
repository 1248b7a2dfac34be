using System.Numerics;
using Pare.Kernels;
using Pare.Tensors;

namespace Pare.Models.Bert;

/// <summary>Token states of a batch after the encoder: sentence s owns rows Offsets[s] .. Offsets[s+1] of Hidden.</summary>
public sealed record BertHidden(float[] Hidden, int[] Offsets, int Dim)
{
    public int Sentences => Offsets.Length - 1;
    public int Length(int s) => Offsets[s + 1] - Offsets[s];
    public ReadOnlySpan<float> Row(int s, int t) => Hidden.AsSpan((Offsets[s] + t) * Dim, Dim);
}

/// <summary>
/// The BERT forward pass on the decoder engine's kernels. A batch is packed without padding: the sentences' tokens are
/// stacked into one (N, D) matrix for every linear layer, and attention runs per sentence over its own tokens only,
/// which is exactly what a padded batch with an attention mask computes, minus the work on pad tokens.
/// </summary>
public sealed class BertEncoder(BertConfig config, BertWeights weights)
{
    public BertConfig Config { get; } = config;
    public BertWeights Weights { get; } = weights;

    /// <summary>Runs the encoder on token ids ([CLS] … [SEP], token type 0, positions 0..T-1).</summary>
    public BertHidden Forward(IReadOnlyList<int[]> batch, int threads, CancellationToken ct = default)
    {
        var h = Embed(batch);
        for (int l = 0; l < Config.Layers; l++)
        {
            ct.ThrowIfCancellationRequested();
            RunLayer(l, h, threads);
        }
        return h;
    }

    /// <summary>The embedding layer: word + position + token type 0, then LayerNorm.       Hidden: (N, D)</summary>
    public BertHidden Embed(IReadOnlyList<int[]> batch)
    {
        var c = Config;
        int d = c.Dim;
        var offsets = new int[batch.Count + 1];
        for (int s = 0; s < batch.Count; s++)
        {
            if (batch[s].Length == 0) throw new PareException($"sentence {s} has no tokens");
            if (batch[s].Length > c.MaxPositions) throw new PareException($"sentence {s} has {batch[s].Length} tokens, more than the {c.MaxPositions} positions of the model");
            offsets[s + 1] = offsets[s] + batch[s].Length;
        }
        var x = new float[offsets[^1] * d];
        var tmp = new float[d];
        for (int s = 0; s < batch.Count; s++)
            for (int t = 0; t < batch[s].Length; t++)
            {
                int id = batch[s][t];
                if ((uint)id >= (uint)c.VocabSize) throw new PareException($"token id {id} is outside the vocabulary of {c.VocabSize}");
                var word = Weights.WordEmbeddings.AsSpan(id * d, d);
                var pos = Weights.PositionEmbeddings.AsSpan(t * d, d);
                var type = Weights.TokenTypeEmbeddings.AsSpan(0, d);
                for (int i = 0; i < d; i++) tmp[i] = word[i] + pos[i] + type[i];
                BertOps.LayerNorm(tmp, Weights.EmbNormW, Weights.EmbNormB, c.LayerNormEps, x.AsSpan((offsets[s] + t) * d, d));
            }
        return new BertHidden(x, offsets, d);
    }

    /// <summary>Names under which <see cref="RunLayer"/> reports the inputs of its linear layers (q, k and v share one).</summary>
    public static readonly string[] LinearInputs = ["attention.self", "attention.output.dense", "intermediate.dense", "output.dense"];

    /// <summary>
    /// Block <paramref name="l"/> in place on <paramref name="h"/>. <paramref name="observe"/>, when given, sees the input
    /// of each linear layer (name from <see cref="LinearInputs"/>, (N, in) rows) before it is multiplied: calibration for pruning.
    /// </summary>
    public void RunLayer(int l, BertHidden h, int threads, Action<string, float[], int>? observe = null)
    {
        var L = Weights.Layers[l];
        int d = Config.Dim, f = Config.FfnDim, n = h.Offsets[^1];
        var x = h.Hidden;
        var qkv = new float[n * 3 * d];
        var ctx = new float[n * d]; var proj = new float[n * d];
        var up = new float[n * f];
        // Self-attention.                                                   qkv: (N, 3D) = x [Wq; Wk; Wv]ᵀ + b
        observe?.Invoke(LinearInputs[0], x, n);
        Linear(L.Wqkv, L.Bqkv, x, n, qkv, threads);
        Attention(qkv, h.Offsets, ctx, threads);                         // ctx: (N, D), heads side by side
        observe?.Invoke(LinearInputs[1], ctx, n);
        Linear(L.Wo, L.Bo, ctx, n, proj, threads);                       // proj: (N, D)
        AddNorm(x, proj, L.AttnNormW, L.AttnNormB, n);                   // x = LN(x + proj)
        // Feed-forward.                                                     up: (N, F)
        observe?.Invoke(LinearInputs[2], x, n);
        Linear(L.Up, L.BUp, x, n, up, threads);
        BertOps.Gelu(up);
        observe?.Invoke(LinearInputs[3], up, n);
        Linear(L.Down, L.BDown, up, n, proj, threads);                   // proj: (N, D)
        AddNorm(x, proj, L.OutNormW, L.OutNormB, n);                     // x = LN(x + proj)
    }

    /// <summary>Tokens per product: a large packed batch is multiplied in slices whose activations stay in cache
    /// (one thread, 32 sentences × 128 tokens: 59 → 47 CPU-ms per sentence).</summary>
    const int TokensPerProduct = 256;

    static void Linear(WeightMatrix w, float[] bias, float[] x, int n, float[] y, int threads)
    {
        for (int t0 = 0; t0 < n; t0 += TokensPerProduct)
        {
            int m = Math.Min(TokensPerProduct, n - t0);
            MatMul.MatMulRows(w, x.AsSpan(t0 * w.Cols, m * w.Cols), m, y.AsSpan(t0 * w.Rows, m * w.Rows), threads);
        }
        for (int t = 0; t < n; t++)
        {
            var row = y.AsSpan(t * w.Rows, w.Rows);
            for (int i = 0; i < row.Length; i++) row[i] += bias[i];
        }
    }

    void AddNorm(float[] x, float[] delta, float[] w, float[] b, int n)
    {
        int d = Config.Dim;
        var tmp = new float[d];
        for (int t = 0; t < n; t++)
        {
            var row = x.AsSpan(t * d, d);
            var add = delta.AsSpan(t * d, d);
            for (int i = 0; i < d; i++) tmp[i] = row[i] + add[i];
            BertOps.LayerNorm(tmp, w, b, Config.LayerNormEps, row);
        }
    }

    /// <summary>Bidirectional attention of each sentence over its own tokens, per head: softmax(q·kᵀ/√d) v.</summary>
    void Attention(float[] qkv, int[] offsets, float[] ctx, int threads)
    {
        int heads = Config.Heads, sentences = offsets.Length - 1;
        Parallel.For(0, sentences * heads, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) },
            job => AttendHead(qkv, offsets[job / heads], offsets[job / heads + 1] - offsets[job / heads], job % heads, ctx));
    }

    /// <summary>
    /// One head of one sentence. K and V of the head are copied transposed, (hd, len), so the scores of a query are
    /// hd vector multiply-adds over all keys at once and each output feature is one dot product over the keys.
    /// </summary>
    void AttendHead(float[] qkv, int start, int len, int h, float[] ctx)
    {
        int d = Config.Dim, hd = Config.HeadDim, stride = 3 * d;
        float scale = 1f / MathF.Sqrt(hd);
        var kt = new float[hd * len]; var vt = new float[hd * len]; var scores = new float[len];
        for (int j = 0; j < len; j++)
        {
            int row = (start + j) * stride + h * hd;
            for (int c = 0; c < hd; c++) { kt[c * len + j] = qkv[row + d + c] * scale; vt[c * len + j] = qkv[row + 2 * d + c]; }
        }
        int w = Vector<float>.Count;
        for (int i = 0; i < len; i++)
        {
            int qRow = (start + i) * stride + h * hd, outRow = (start + i) * d + h * hd;
            int j = 0;
            for (; j <= len - w; j += w)
            {
                var acc = Vector<float>.Zero;
                for (int c = 0; c < hd; c++) acc += new Vector<float>(qkv[qRow + c]) * new Vector<float>(kt, c * len + j);
                acc.CopyTo(scores, j);
            }
            for (; j < len; j++)
            {
                float acc = 0;
                for (int c = 0; c < hd; c++) acc += qkv[qRow + c] * kt[c * len + j];
                scores[j] = acc;
            }
            Ops.Softmax(scores);
            for (int c = 0; c < hd; c++) ctx[outRow + c] = Ops.Dot(scores, vt.AsSpan(c * len, len));
        }
    }
}
