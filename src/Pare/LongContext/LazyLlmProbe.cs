using Pare.Models;

namespace Pare.LongContext;

/// <summary>
/// A diagnostic for choosing a LazyLLM schedule: the full prefill's attention of the prompt's last tokens (the observation
/// window) at every layer, per head, so one can see at which layer the question's attention finds the needle
/// (<c>benchmarks/Pare.LazyBench --probe</c>). Not on any inference path.
/// </summary>
public static class LazyLlmProbe
{
    /// <summary>Prefills <paramref name="prompt"/> in full, layer by layer; returns per layer the softmax attention of each of
    /// the last <paramref name="window"/> prompt tokens over its causal prefix, laid out [head][query w][position] (query w is
    /// prompt token n - window + w; positions past it are 0).</summary>
    public static float[][] Attention(InferenceSession session, ReadOnlySpan<int> prompt, int window)
    {
        var c = session.Model.Config;
        int n = prompt.Length, hd = c.HeadDim;
        if (window < 1 || window > n) throw new PareException($"the probe window must be in 1 .. {n} tokens (got {window})");
        if (n > session.ContextLength) throw new PareException($"context is full: {n} tokens exceed the context length {session.ContextLength}");
        session.Reset();
        var x = session.Embed(prompt);
        int[] all = [.. Enumerable.Range(0, n)];
        var result = new float[c.Layers][];
        float scale = 1f / MathF.Sqrt(hd);
        for (int l = 0; l < c.Layers; l++)
        {
            int heads = c.HeadsAt(l), kvHeads = c.KvHeadsAt(l), group = heads / kvHeads;
            var q = new float[window * heads * hd];
            session.ForwardBlock(l, x, all, compact: true, q);
            var (k, v) = session.Cache.Read(l, n);
            var view = new Pare.Models.Kv.KvView(k.Span, v.Span, session.ContextLength, heads, kvHeads, hd);
            var a = result[l] = new float[heads * window * n];
            for (int h = 0; h < heads; h++)
                for (int w = 0; w < window; w++)
                {
                    var row = a.AsSpan((h * window + w) * n, n);
                    var qw = q.AsSpan((w * heads + h) * hd, hd);
                    int len = n - window + w + 1;
                    for (int i = 0; i < len; i++) row[i] = view.Dot(h / group, i, qw) * scale;
                    Pare.Kernels.Ops.Softmax(row[..len]);
                }
        }
        session.Reset();
        return result;
    }
}
