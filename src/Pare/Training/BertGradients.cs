using Pare.Models.Bert;
using Pare.Training.Kernels;
using Pare.Training.Ops;

namespace Pare.Training;

/// <summary>
/// What <see cref="BertGradients.Forward"/> keeps for the backward pass: every block's activations from block
/// <see cref="From"/> on, the final token states and the sentence vectors.
/// </summary>
public sealed class BertTape
{
    internal sealed class Layer
    {
        public required float[] X0, Q, K, V, Ctx, Z1Hat, InvStd1, X1, U, G, Z2Hat, InvStd2;
        public required float[][] Probs; // (sentence, head) → (len, len)
    }

    internal BertTape(int from, int[] offsets, List<Layer> layers, float[] last, float[][] pooled, float[] norms, float[][] embeddings)
    { From = from; Offsets = offsets; Layers = layers; Last = last; Pooled = pooled; Norms = norms; Embeddings = embeddings; }

    /// <summary>First block run (and the lowest block whose weight gradients <see cref="BertGradients.Backward"/> can give).</summary>
    public int From { get; }
    internal int[] Offsets { get; }
    internal List<Layer> Layers { get; }
    internal float[] Last { get; }
    internal float[][] Pooled { get; }
    internal float[] Norms { get; }
    /// <summary>Sentence vectors (pooled, normalized when the config says so).</summary>
    public float[][] Embeddings { get; }
    public int Sentences => Offsets.Length - 1;
}

/// <summary>
/// Gradients of a loss on BERT sentence vectors with respect to the weights of the linear layers of one block, per
/// sentence (what an empirical Fisher needs: one gradient per sample, not their sum).
/// <para>Forward: the same block as <see cref="BertEncoder"/> (post-LayerNorm, q/k/v, softmax attention per sentence and
/// head, exact GELU, mean or [CLS] pooling, L2 normalization), from a block's input states on, keeping the
/// activations. Products on the training kernels (<see cref="GradMatMul"/>, weights transposed once per block).</para>
/// <para>Backward, from dL/d(sentence vector) down to block <c>layer</c>: normalization and pooling, then per block
/// LayerNorm (dz = (dx̂ - mean(dx̂) - x̂ mean(dx̂ x̂)) / σ, dx̂ = dy w), the feed-forward (GELU' = Φ(u) + u φ(u)), and the
/// attention (dP = dctx vᵀ, dS = P (dP - rowsum(dP P)), dq = dS k / √d, dk = dSᵀ q / √d, dv = Pᵀ dctx). Weight
/// gradients of block <c>layer</c>'s six matrices ([out, in], PyTorch layout) per sentence: dW_s = dY_sᵀ X_s over the
/// sentence's own tokens. Checked against finite differences of <see cref="BertEncoderReference"/> in the tests.</para>
/// </summary>
public sealed class BertGradients
{
    /// <summary>The six linear layers of a block, in the order <see cref="Backward"/> fills them.</summary>
    public static readonly string[] Matrices =
        ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense"];

    readonly BertConfig _c;
    readonly BertTensors _t;
    readonly int _threads;
    readonly Dictionary<int, float[][]> _transposed = [];

    public BertGradients(BertConfig config, BertTensors tensors, int threads)
    {
        tensors.Validate(config, "BERT weights");
        _c = config; _t = tensors; _threads = Math.Max(1, threads);
    }

    /// <summary>Drops the cached transposed weights of block <paramref name="layer"/> (after its weights changed).</summary>
    public void Invalidate(int layer) => _transposed.Remove(layer);

    string P(int l, int m) => $"encoder.layer.{l}.{Matrices[m]}";
    float[] W(int l, int m) => _t.Get(P(l, m) + ".weight");
    float[] B(int l, int m) => _t.Get(P(l, m) + ".bias");

    float[][] Transposed(int l)
    {
        if (_transposed.TryGetValue(l, out var wt)) return wt;
        wt = new float[Matrices.Length][];
        for (int m = 0; m < Matrices.Length; m++)
        {
            var shape = _t.Shape(P(l, m) + ".weight");
            wt[m] = new float[W(l, m).Length];
            Linear.Transpose(W(l, m), (int)shape[0], (int)shape[1], wt[m]);
        }
        return _transposed[l] = wt;
    }

    /// <summary>Runs blocks <paramref name="from"/>.. on <paramref name="input"/> (block <paramref name="from"/>'s input
    /// states, e.g. <see cref="BertEncoder.Embed"/> for block 0), pools and normalizes, keeping what the backward pass needs.</summary>
    public BertTape Forward(BertHidden input, int from)
    {
        if (from < 0 || from >= _c.Layers) throw new ArgumentOutOfRangeException(nameof(from));
        if (input.Sizes != null) throw new PareException("gradients are not defined for token-reduced batches");
        int d = _c.Dim, f = _c.FfnDim, n = input.Offsets[^1];
        var offsets = input.Offsets;
        var x = (float[])input.Hidden.Clone();
        var layers = new List<BertTape.Layer>();
        for (int l = from; l < _c.Layers; l++)
        {
            var wt = Transposed(l);
            var q = Lin(x, n, wt[0], B(l, 0), d, d);
            var k = Lin(x, n, wt[1], B(l, 1), d, d);
            var v = Lin(x, n, wt[2], B(l, 2), d, d);
            var ctx = new float[n * d];
            var probs = new float[(offsets.Length - 1) * _c.Heads][];
            AttentionForward(q, k, v, offsets, ctx, probs);
            var a = Lin(ctx, n, wt[3], B(l, 3), d, d);
            var p = $"encoder.layer.{l}.";
            var (x1, z1, inv1) = AddNorm(x, a, n, _t.Get(p + "attention.output.LayerNorm.weight"), _t.Get(p + "attention.output.LayerNorm.bias"));
            var u = Lin(x1, n, wt[4], B(l, 4), d, f);
            var g = (float[])u.Clone();
            BertOps.Gelu(g);
            var dn = Lin(g, n, wt[5], B(l, 5), f, d);
            var (x2, z2, inv2) = AddNorm(x1, dn, n, _t.Get(p + "output.LayerNorm.weight"), _t.Get(p + "output.LayerNorm.bias"));
            layers.Add(new BertTape.Layer { X0 = x, Q = q, K = k, V = v, Ctx = ctx, Probs = probs, Z1Hat = z1, InvStd1 = inv1, X1 = x1, U = u, G = g, Z2Hat = z2, InvStd2 = inv2 });
            x = x2;
        }
        int sentences = offsets.Length - 1;
        var pooled = new float[sentences][];
        var norms = new float[sentences];
        var emb = new float[sentences][];
        for (int s = 0; s < sentences; s++)
        {
            int len = offsets[s + 1] - offsets[s];
            var e = new double[d];
            if (_c.Pooling == BertPooling.Cls) for (int i = 0; i < d; i++) e[i] = x[offsets[s] * d + i];
            else
            {
                for (int t = 0; t < len; t++) for (int i = 0; i < d; i++) e[i] += x[(offsets[s] + t) * d + i];
                for (int i = 0; i < d; i++) e[i] /= len;
            }
            pooled[s] = [.. e.Select(v => (float)v)];
            double ss = e.Sum(v => v * v);
            norms[s] = (float)Math.Max(Math.Sqrt(ss), 1e-12);
            emb[s] = _c.Normalize ? [.. e.Select(v => (float)(v / norms[s]))] : (float[])pooled[s].Clone();
        }
        return new BertTape(from, offsets, layers, x, pooled, norms, emb);
    }

    /// <summary>
    /// Back-propagates <paramref name="dEmbedding"/> (dL_s / d sentence vector s, one per sentence) down to block
    /// <paramref name="layer"/> and writes the weight gradients of its six matrices per sentence:
    /// <paramref name="grads"/>[m][s] ([out, in] of <see cref="Matrices"/>[m], overwritten).
    /// </summary>
    public void Backward(BertTape tape, IReadOnlyList<float[]> dEmbedding, int layer, float[][][] grads)
    {
        if (layer < tape.From || layer >= _c.Layers) throw new ArgumentOutOfRangeException(nameof(layer), $"block {layer} was not run by this tape (from {tape.From})");
        int d = _c.Dim, f = _c.FfnDim, sentences = tape.Sentences, n = tape.Offsets[^1];
        if (dEmbedding.Count != sentences || grads.Length != Matrices.Length || grads.Any(g => g.Length < sentences))
            throw new ArgumentException("one gradient per sentence and a buffer per matrix and sentence");
        var off = tape.Offsets;
        // Normalization and pooling: dx of the last block's output.
        var dx = new float[n * d];
        for (int s = 0; s < sentences; s++)
        {
            var dv = dEmbedding[s];
            var de = new double[d];
            if (_c.Normalize)
            {
                var eh = tape.Embeddings[s];
                double dot = 0;
                for (int i = 0; i < d; i++) dot += (double)eh[i] * dv[i];
                for (int i = 0; i < d; i++) de[i] = (dv[i] - eh[i] * dot) / tape.Norms[s];
            }
            else for (int i = 0; i < d; i++) de[i] = dv[i];
            int len = off[s + 1] - off[s];
            if (_c.Pooling == BertPooling.Cls) for (int i = 0; i < d; i++) dx[off[s] * d + i] = (float)de[i];
            else
                for (int t = 0; t < len; t++)
                    for (int i = 0; i < d; i++) dx[(off[s] + t) * d + i] = (float)(de[i] / len);
        }
        for (int l = _c.Layers - 1; l >= layer; l--)
        {
            var a = tape.Layers[l - tape.From];
            bool want = l == layer;
            string p = $"encoder.layer.{l}.";
            // x2 = LN2(x1 + dn)
            var dz2 = NormBackward(dx, a.Z2Hat, a.InvStd2, _t.Get(p + "output.LayerNorm.weight"), n);
            if (want) PerSample(dz2, a.G, off, d, f, grads[5]);
            var dg = new float[n * f];
            GradMatMul.InputGrad(dz2, W(l, 5), dg, n, d, f, accumulate: false, _threads);
            GeluBackward(dg, a.U);
            if (want) PerSample(dg, a.X1, off, f, d, grads[4]);
            var dx1 = dz2;                                                    // residual path
            GradMatMul.InputGrad(dg, W(l, 4), dx1, n, f, d, accumulate: true, _threads);
            // x1 = LN1(x0 + o)
            var dz1 = NormBackward(dx1, a.Z1Hat, a.InvStd1, _t.Get(p + "attention.output.LayerNorm.weight"), n);
            if (want) PerSample(dz1, a.Ctx, off, d, d, grads[3]);
            var dctx = new float[n * d];
            GradMatMul.InputGrad(dz1, W(l, 3), dctx, n, d, d, accumulate: false, _threads);
            var dq = new float[n * d]; var dk = new float[n * d]; var dvv = new float[n * d];
            AttentionBackward(a, off, dctx, dq, dk, dvv);
            if (want)
            {
                PerSample(dq, a.X0, off, d, d, grads[0]);
                PerSample(dk, a.X0, off, d, d, grads[1]);
                PerSample(dvv, a.X0, off, d, d, grads[2]);
                return;                                                       // nothing below is needed
            }
            var dx0 = dz1;
            GradMatMul.InputGrad(dq, W(l, 0), dx0, n, d, d, accumulate: true, _threads);
            GradMatMul.InputGrad(dk, W(l, 1), dx0, n, d, d, accumulate: true, _threads);
            GradMatMul.InputGrad(dvv, W(l, 2), dx0, n, d, d, accumulate: true, _threads);
            dx = dx0;
        }
    }

    /// <summary>dW_s = dY_sᵀ X_s for each sentence s (its own rows only).</summary>
    void PerSample(float[] dy, float[] x, int[] off, int outDim, int inDim, float[][] dst)
    {
        for (int s = 0; s < off.Length - 1; s++)
        {
            int len = off[s + 1] - off[s];
            Array.Clear(dst[s]);
            GradMatMul.WeightGrad(dy.AsSpan(off[s] * outDim, len * outDim), x.AsSpan(off[s] * inDim, len * inDim), dst[s].AsSpan(0, outDim * inDim), len, outDim, inDim, _threads);
        }
    }

    float[] Lin(float[] x, int n, float[] wT, float[] bias, int inDim, int outDim)
    {
        var y = new float[n * outDim];
        Linear.Forward(x, wT, n, inDim, outDim, y, _threads);
        for (int t = 0; t < n; t++)
        {
            var row = y.AsSpan(t * outDim, outDim);
            for (int i = 0; i < outDim; i++) row[i] += bias[i];
        }
        return y;
    }

    /// <summary>y = LN(x + delta): returns y, x̂ and 1/σ per row (mean and variance in double).</summary>
    (float[] Y, float[] ZHat, float[] InvStd) AddNorm(float[] x, float[] delta, int n, float[] w, float[] b)
    {
        int d = _c.Dim;
        var y = new float[n * d]; var zh = new float[n * d]; var inv = new float[n];
        Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = _threads }, t =>
        {
            double mean = 0, var = 0;
            for (int i = 0; i < d; i++) mean += (double)x[t * d + i] + delta[t * d + i];
            mean /= d;
            for (int i = 0; i < d; i++) { double z = (double)x[t * d + i] + delta[t * d + i] - mean; var += z * z; }
            double istd = 1 / Math.Sqrt(var / d + _c.LayerNormEps);
            inv[t] = (float)istd;
            for (int i = 0; i < d; i++)
            {
                double zhat = ((double)x[t * d + i] + delta[t * d + i] - mean) * istd;
                zh[t * d + i] = (float)zhat;
                y[t * d + i] = (float)(zhat * w[i] + b[i]);
            }
        });
        return (y, zh, inv);
    }

    /// <summary>dz of y = x̂ w + b, x̂ = (z - μ) / σ: (dx̂ - mean(dx̂) - x̂ mean(dx̂ x̂)) / σ, dx̂ = dy w.</summary>
    float[] NormBackward(float[] dy, float[] zHat, float[] invStd, float[] w, int n)
    {
        int d = _c.Dim;
        var dz = new float[n * d];
        Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = _threads }, t =>
        {
            double m1 = 0, m2 = 0;
            for (int i = 0; i < d; i++) { double g = (double)dy[t * d + i] * w[i]; m1 += g; m2 += g * zHat[t * d + i]; }
            m1 /= d; m2 /= d;
            for (int i = 0; i < d; i++)
                dz[t * d + i] = (float)(((double)dy[t * d + i] * w[i] - m1 - zHat[t * d + i] * m2) * invStd[t]);
        });
        return dz;
    }

    /// <summary>In place: dg · GELU'(u), GELU'(u) = Φ(u) + u φ(u).</summary>
    void GeluBackward(float[] dg, float[] u)
    {
        const float invSqrt2 = 0.70710678118654752f, invSqrt2Pi = 0.3989422804014327f;
        Parallel.For(0, _threads, new ParallelOptions { MaxDegreeOfParallelism = _threads }, part =>
        {
            int i0 = (int)((long)dg.Length * part / _threads), i1 = (int)((long)dg.Length * (part + 1) / _threads);
            for (int i = i0; i < i1; i++)
            {
                float v = u[i];
                dg[i] *= 0.5f * (1f + BertOps.Erf(v * invSqrt2)) + v * invSqrt2Pi * MathF.Exp(-0.5f * v * v);
            }
        });
    }

    void AttentionForward(float[] q, float[] k, float[] v, int[] off, float[] ctx, float[][] probs)
    {
        int heads = _c.Heads, hd = _c.HeadDim, d = _c.Dim;
        float scale = 1f / MathF.Sqrt(hd);
        Parallel.For(0, (off.Length - 1) * heads, new ParallelOptions { MaxDegreeOfParallelism = _threads }, job =>
        {
            int s = job / heads, h = job % heads, start = off[s], len = off[s + 1] - start;
            var pr = probs[job] = new float[len * len];
            for (int i = 0; i < len; i++)
            {
                var row = pr.AsSpan(i * len, len);
                var qi = q.AsSpan((start + i) * d + h * hd, hd);
                for (int j = 0; j < len; j++) row[j] = GradMatMul.Dot(qi, k.AsSpan((start + j) * d + h * hd, hd)) * scale;
                GradMatMul.SoftmaxInPlace(row);
                var o = ctx.AsSpan((start + i) * d + h * hd, hd);
                for (int j = 0; j < len; j++) GradMatMul.Axpy(row[j], v.AsSpan((start + j) * d + h * hd, hd), o);
            }
        });
    }

    void AttentionBackward(BertTape.Layer a, int[] off, float[] dctx, float[] dq, float[] dk, float[] dv)
    {
        int heads = _c.Heads, hd = _c.HeadDim, d = _c.Dim;
        float scale = 1f / MathF.Sqrt(hd);
        Parallel.For(0, (off.Length - 1) * heads, new ParallelOptions { MaxDegreeOfParallelism = _threads }, job =>
        {
            int s = job / heads, h = job % heads, start = off[s], len = off[s + 1] - start;
            var pr = a.Probs[job];
            var ds = new float[len];
            for (int i = 0; i < len; i++)
            {
                var row = pr.AsSpan(i * len, len);
                var dci = dctx.AsSpan((start + i) * d + h * hd, hd);
                double dot = 0;
                for (int j = 0; j < len; j++)
                {
                    ds[j] = GradMatMul.Dot(dci, a.V.AsSpan((start + j) * d + h * hd, hd));   // dP_ij
                    dot += (double)ds[j] * row[j];
                    GradMatMul.Axpy(row[j], dci, dv.AsSpan((start + j) * d + h * hd, hd));   // dv_j += P_ij dctx_i
                }
                var dqi = dq.AsSpan((start + i) * d + h * hd, hd);
                var qi = a.Q.AsSpan((start + i) * d + h * hd, hd);
                for (int j = 0; j < len; j++)
                {
                    float g = (float)(row[j] * (ds[j] - dot)) * scale;                          // dS_ij / √d
                    if (g == 0) continue;
                    GradMatMul.Axpy(g, a.K.AsSpan((start + j) * d + h * hd, hd), dqi);
                    GradMatMul.Axpy(g, qi, dk.AsSpan((start + j) * d + h * hd, hd));
                }
            }
        });
    }
}
