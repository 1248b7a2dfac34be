using Pare.Kernels;
using Pare.Models;

namespace Pare.LongContext;

/// <summary>
/// Slow reference of <see cref="LazyLlm"/> + <see cref="LazyPrefill.Revive"/>, written from the method's definition rather
/// than from the fast code: dequantized weights, scalar loops with double accumulation (<see cref="OpsReference"/>), one
/// dense masked pass per layer over every prompt position. Each prompt token has exactly one hidden state per layer: at
/// layer l a token that is still computed by the prefill (not deferred at or below l) attends to the causal prefix of the
/// tokens still computed at l (what the pruned prefill sees); a deferred token, resumed from its aux-cache state, attends
/// to every position up to its own at l (what revival sees). The deferral schedule is derived here too: before each
/// pruning layer l, the softmax attention at layer l-1 of the observation window (the last Window prompt tokens still
/// computed; the paper's last token by default) over the tokens still computed, averaged over the window per head (or its
/// maximum), then the mean (or maximum) over heads, then optionally max-pooled over neighbouring computed tokens; the top ceil(count x keep) are kept (ties to the earlier position; the window always).
/// With SameLayer the attention is layer l's own (the window's queries over the keys at l of the tokens still computed
/// before the cut), reduced the same way. Tokens decoded
/// after the prompt attend to every position at every layer.
/// </summary>
public static class LazyLlmReference
{
    /// <summary>Reference outputs: the first answer token's logits (the pruned prefill's), the layer at which each prompt
    /// position was deferred (<c>Layers</c> = never), every layer's K (post-RoPE) and V rows (position-major, kv_dim wide)
    /// after revival, for the prompt and the decoded tokens, and the logits after the last decoded token (null if none).</summary>
    public sealed record Result(float[] FirstLogits, int[] DeferredAt, float[][] K, float[][] V, float[]? DecodedLogits);

    public static Result Run(LlamaModel model, ReadOnlySpan<int> prompt, LazyLlmOptions options, ReadOnlySpan<int> decode = default)
    {
        var c = model.Config;
        if (c.Sliced) throw new PareException("LazyLLM does not support SliceGPT models");
        var w = model.Weights;
        int n = prompt.Length, total = n + decode.Length, dim = c.Dim, layers = c.Layers, hd = c.HeadDim;
        var schedule = options.Schedule(layers);
        int[] tokens = [.. prompt, .. decode];
        var h = new float[total][];
        for (int t = 0; t < total; t++) { h[t] = new float[dim]; Dequant.Row(w.TokenEmbedding.Type, w.TokenEmbedding.Row(tokens[t]), h[t]); }
        var deferredAt = Enumerable.Repeat(layers, n).ToArray();
        var kOut = new float[layers][];
        var vOut = new float[layers][];
        double[] lastProbs = [];   // the prompt's last token's attention at the previous layer, mean over heads, by position
        float[] firstLogits = [];
        // The prompt is evaluated first (pruned prefill + revival), then each decoded token in turn: positions >= n are
        // computed in their own pass so they never influence the prompt's states (causality makes this the same as one pass).
        for (int l = 0; l < layers; l++)
        {
            var lw = w.Layers[l];
            int heads = c.HeadsAt(l), kvHeads = c.KvHeadsAt(l), group = heads / kvHeads, qd = heads * hd, kvd = kvHeads * hd;
            // The observation window at this layer: the last Window prompt tokens still computed here.
            var window = Enumerable.Range(0, n).Where(i => deferredAt[i] > l).TakeLast(options.Window).ToHashSet();
            var q = new float[total][];
            var k = new float[total * kvd];
            var v = new float[total * kvd];
            var xb = new float[dim];
            for (int t = 0; t < total; t++)
            {
                OpsReference.RmsNorm(h[t], lw.AttnNorm, c.RmsEps, xb);
                q[t] = MatVec(lw.Wq, xb, lw.Bq);
                var kt = MatVec(lw.Wk, xb, lw.Bk);
                var vt = MatVec(lw.Wv, xb, lw.Bv);
                OpsReference.Rope(q[t], heads, hd, c.RopeDim, t, c.RopeBase, c.RopeLayout);
                OpsReference.Rope(kt, kvHeads, hd, c.RopeDim, t, c.RopeBase, c.RopeLayout);
                kt.CopyTo(k, t * kvd);
                vt.CopyTo(v, t * kvd);
            }
            // The deferral at a pruning layer (q, k and v above depend only on each token's own state, not on it).
            if (schedule.TryGetValue(l, out double keep) && keep < 1)
            {
                var active = Enumerable.Range(0, n).Where(i => deferredAt[i] > l - 1).ToArray();
                int m = Math.Min(options.Window, active.Length);   // the observation window stays
                if (active.Length > m)
                {
                    // The importance: the layer below's (the paper's), or this layer's own attention of the window over the
                    // tokens still computed (SameLayer).
                    var score = options.SameLayer ? SameLayerImportance(options, q, k, active, m, heads, group, hd, kvd, n) : lastProbs;
                    int keepN = Math.Max(m, (int)Math.Ceiling(active.Length * keep));
                    var kept = active[..^m].OrderByDescending(i => score[i]).ThenBy(i => i).Take(keepN - m).ToHashSet();
                    foreach (int i in active[..^m])
                        if (!kept.Contains(i)) deferredAt[i] = l;
                }
            }
            var probsHead = new double[heads, n];   // per head: the window's attention, averaged over its queries
            var next = new float[total][];
            for (int t = 0; t < total; t++)
            {
                bool computed = t >= n || deferredAt[t] > l;      // in the prefill's (or the decode's) own pass at l
                bool decoded = t >= n;
                var att = new float[qd];
                var seen = Enumerable.Range(0, t + 1).Where(j => decoded || !computed || deferredAt[j] > l).ToArray();
                for (int hh = 0; hh < heads; hh++)
                {
                    int kh = hh / group;
                    var s = new float[seen.Length];
                    for (int a = 0; a < seen.Length; a++)
                        s[a] = OpsReference.Dot(q[t].AsSpan(hh * hd, hd), k.AsSpan(seen[a] * kvd + kh * hd, hd)) / MathF.Sqrt(hd);
                    OpsReference.Softmax(s);
                    for (int a = 0; a < seen.Length; a++)
                    {
                        OpsReference.Axpy(s[a], v.AsSpan(seen[a] * kvd + kh * hd, hd), att.AsSpan(hh * hd, hd));
                        if (window.Contains(t))
                            probsHead[hh, seen[a]] = options.MaxOverWindow ? Math.Max(probsHead[hh, seen[a]], s[a])
                                : probsHead[hh, seen[a]] + s[a] / (double)window.Count;
                    }
                }
                var o = MatVec(lw.Wo, att, lw.Bo);
                var x = h[t].ToArray();
                for (int d = 0; d < dim; d++) x[d] += o[d];
                OpsReference.RmsNorm(x, lw.FfnNorm, c.RmsEps, xb);
                var gate = MatVec(lw.Gate, xb, null);
                var up = MatVec(lw.Up, xb, null);
                OpsReference.SwiGlu(gate, up);
                var down = MatVec(lw.Down, gate, lw.BDown);
                for (int d = 0; d < dim; d++) x[d] += down[d];
                next[t] = x;
            }
            h = next;
            lastProbs = Reduce(options, probsHead, heads, [.. Enumerable.Range(0, n).Where(i => deferredAt[i] > l)]);
            kOut[l] = k;
            vOut[l] = v;
        }
        firstLogits = Head(model, h[n - 1]);
        return new Result(firstLogits, deferredAt, kOut, vOut, decode.Length > 0 ? Head(model, h[total - 1]) : null);
    }

    /// <summary>Per-head window attention (heads, n) reduced over heads (mean, the paper's, or maximum), then max-pooled over
    /// neighbours among the <paramref name="active"/> tokens (those that were scored).</summary>
    static double[] Reduce(LazyLlmOptions options, double[,] probsHead, int heads, int[] active)
    {
        int n = probsHead.GetLength(1);
        var probs = new double[n];
        for (int i = 0; i < n; i++)
            for (int hh = 0; hh < heads; hh++)
                probs[i] = options.MaxOverHeads ? Math.Max(probs[i], probsHead[hh, i]) : probs[i] + probsHead[hh, i] / heads;
        if (options.Pool <= 1) return probs;
        var pooled = (double[])probs.Clone();
        for (int a = 0; a < active.Length; a++)
            for (int b = Math.Max(0, a - options.Pool / 2); b <= Math.Min(active.Length - 1, a + options.Pool / 2); b++)
                pooled[active[a]] = Math.Max(pooled[active[a]], probs[active[b]]);
        return pooled;
    }

    /// <summary>SameLayer's importance at a pruning layer: this layer's softmax attention of each of the last m
    /// <paramref name="active"/> tokens (its queries q) over the active tokens up to it (their keys k), averaged over the m per
    /// head (or the maximum), then reduced as the layer below's importance is.</summary>
    static double[] SameLayerImportance(LazyLlmOptions options, float[][] q, float[] k, int[] active, int m, int heads, int group, int hd, int kvd, int n)
    {
        var probsHead = new double[heads, n];
        for (int w = active.Length - m; w < active.Length; w++)
        {
            int t = active[w];
            var seen = active[..(w + 1)];
            for (int hh = 0; hh < heads; hh++)
            {
                var s = new float[seen.Length];
                for (int a = 0; a < seen.Length; a++)
                    s[a] = OpsReference.Dot(q[t].AsSpan(hh * hd, hd), k.AsSpan(seen[a] * kvd + hh / group * hd, hd)) / MathF.Sqrt(hd);
                OpsReference.Softmax(s);
                for (int a = 0; a < seen.Length; a++)
                    probsHead[hh, seen[a]] = options.MaxOverWindow ? Math.Max(probsHead[hh, seen[a]], s[a]) : probsHead[hh, seen[a]] + s[a] / (double)m;
            }
        }
        return Reduce(options, probsHead, heads, active);
    }

    internal static float[] Head(LlamaModel model, float[] x)
    {
        var xo = new float[x.Length];
        OpsReference.RmsNorm(x, model.Weights.OutputNorm, model.Config.RmsEps, xo);
        return MatVec(model.Weights.Output, xo, null);
    }

    internal static float[] MatVec(Pare.Kernels.WeightMatrix m, ReadOnlySpan<float> x, float[]? bias)
    {
        if (m.Sparse != null) throw new PareException($"{m.Name}: the LazyLLM reference reads dense weights only");
        var y = new float[m.Rows];
        var row = new float[m.Cols];
        for (int r = 0; r < m.Rows; r++)
        {
            Dequant.Row(m.Type, m.Row(r), row);
            y[r] = OpsReference.Dot(row, x) + (bias?[r] ?? 0);
        }
        return y;
    }
}
