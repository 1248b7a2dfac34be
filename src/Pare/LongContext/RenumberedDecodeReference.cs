using Pare.Kernels;
using Pare.Models;

namespace Pare.LongContext;

/// <summary>
/// Slow reference of a decode step under a re-numbering KV policy (TokenSelect's RoPE over the gathered sequence, the
/// engine's <c>IKvPolicy.Renumber</c>), written from the definition: keys kept pre-RoPE, scalar loops with double
/// accumulation (<see cref="OpsReference"/>). The prompt's first n−1 tokens are a dense causal prefill (keys and queries
/// rotated at their true positions); at every layer the last token attends to that layer's selected prefix positions,
/// their pre-RoPE keys rotated at their rank 0..G−1 in the selection, and to itself with key and query rotated at G.
/// </summary>
public static class RenumberedDecodeReference
{
    /// <summary>Logits of the prompt's last token; <paramref name="selections"/>[l] = the positions (ascending, below
    /// prompt.Length − 1) its heads read at layer l, null = every prefix position.</summary>
    public static float[] Run(LlamaModel model, ReadOnlySpan<int> prompt, IReadOnlyList<int[]?> selections)
    {
        var c = model.Config;
        if (c.Sliced) throw new PareException("the renumbering reference does not support SliceGPT models");
        var w = model.Weights;
        int n = prompt.Length, last = n - 1, dim = c.Dim, hd = c.HeadDim;
        var h = new float[n][];
        for (int t = 0; t < n; t++) { h[t] = new float[dim]; Dequant.Row(w.TokenEmbedding.Type, w.TokenEmbedding.Row(prompt[t]), h[t]); }
        for (int l = 0; l < c.Layers; l++)
        {
            var lw = w.Layers[l];
            int heads = c.HeadsAt(l), kvHeads = c.KvHeadsAt(l), group = heads / kvHeads, qd = heads * hd, kvd = kvHeads * hd;
            int[] sel = selections[l] ?? [.. Enumerable.Range(0, last)];
            var qRaw = new float[n][];
            var kRaw = new float[n][];
            var v = new float[n][];
            var xb = new float[dim];
            for (int t = 0; t < n; t++)
            {
                OpsReference.RmsNorm(h[t], lw.AttnNorm, c.RmsEps, xb);
                qRaw[t] = LazyLlmReference.MatVec(lw.Wq, xb, lw.Bq);
                kRaw[t] = LazyLlmReference.MatVec(lw.Wk, xb, lw.Bk);
                v[t] = LazyLlmReference.MatVec(lw.Wv, xb, lw.Bv);
            }
            var next = new float[n][];
            for (int t = 0; t < n; t++)
            {
                // (position each key is rotated at, its index): the prefill's true positions, or the last token's ranks.
                (int Pos, int Index)[] keys = t < last
                    ? [.. Enumerable.Range(0, t + 1).Select(j => (j, j))]
                    : [.. sel.Select((p, i) => (i, p)), (sel.Length, last)];
                int qPos = t < last ? t : sel.Length;
                var q = qRaw[t].ToArray();
                OpsReference.Rope(q, heads, hd, c.RopeDim, qPos, c.RopeBase, c.RopeLayout);
                var att = new float[qd];
                for (int hh = 0; hh < heads; hh++)
                {
                    int kh = hh / group;
                    var s = new float[keys.Length];
                    for (int a = 0; a < keys.Length; a++)
                    {
                        var k = kRaw[keys[a].Index].ToArray();
                        OpsReference.Rope(k, kvHeads, hd, c.RopeDim, keys[a].Pos, c.RopeBase, c.RopeLayout);
                        s[a] = OpsReference.Dot(q.AsSpan(hh * hd, hd), k.AsSpan(kh * hd, hd)) / MathF.Sqrt(hd);
                    }
                    OpsReference.Softmax(s);
                    for (int a = 0; a < keys.Length; a++) OpsReference.Axpy(s[a], v[keys[a].Index].AsSpan(kh * hd, hd), att.AsSpan(hh * hd, hd));
                }
                var o = LazyLlmReference.MatVec(lw.Wo, att, lw.Bo);
                var x = h[t].ToArray();
                for (int d = 0; d < dim; d++) x[d] += o[d];
                OpsReference.RmsNorm(x, lw.FfnNorm, c.RmsEps, xb);
                var gate = LazyLlmReference.MatVec(lw.Gate, xb, null);
                var up = LazyLlmReference.MatVec(lw.Up, xb, null);
                OpsReference.SwiGlu(gate, up);
                var down = LazyLlmReference.MatVec(lw.Down, gate, lw.BDown);
                for (int d = 0; d < dim; d++) x[d] += down[d];
                next[t] = x;
            }
            h = next;
        }
        return LazyLlmReference.Head(model, h[last]);
    }
}
