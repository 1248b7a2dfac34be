namespace Pare.Models.Bert;

/// <summary>
/// The BERT forward pass written plainly (one sentence, double-precision loops over <see cref="BertTensors"/> in
/// PyTorch layout, the reference ops): what <see cref="BertEncoder"/>'s packed batches and kernels are tested against.
/// </summary>
public static class BertEncoderReference
{
    /// <summary>Token states (T, D) of one sentence.</summary>
    public static float[][] Forward(BertConfig c, BertTensors w, int[] ids)
    {
        int d = c.Dim, hd = c.HeadDim, n = ids.Length;
        var word = w.Get("embeddings.word_embeddings.weight");
        var pos = w.Get("embeddings.position_embeddings.weight");
        var type = w.Get("embeddings.token_type_embeddings.weight");
        var x = new float[n][];
        for (int t = 0; t < n; t++)
        {
            var e = new float[d];
            for (int i = 0; i < d; i++) e[i] = word[ids[t] * d + i] + pos[t * d + i] + type[i];
            x[t] = new float[d];
            BertOpsReference.LayerNorm(e, w.Get("embeddings.LayerNorm.weight"), w.Get("embeddings.LayerNorm.bias"), c.LayerNormEps, x[t]);
        }
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"encoder.layer.{l}.";
            float[][] Lin(float[][] a, string name) => [.. a.Select(r => Linear(r, w.Get(p + name + ".weight"), w.Get(p + name + ".bias")))];
            var q = Lin(x, "attention.self.query");
            var k = Lin(x, "attention.self.key");
            var v = Lin(x, "attention.self.value");
            var ctx = new float[n][];
            for (int i = 0; i < n; i++)
            {
                ctx[i] = new float[d];
                for (int h = 0; h < c.Heads; h++)
                {
                    var s = new double[n];
                    for (int j = 0; j < n; j++)
                    {
                        double dot = 0;
                        for (int e = 0; e < hd; e++) dot += (double)q[i][h * hd + e] * k[j][h * hd + e];
                        s[j] = dot / Math.Sqrt(hd);
                    }
                    double max = s.Max(), sum = s.Sum(z => Math.Exp(z - max));
                    for (int e = 0; e < hd; e++)
                    {
                        double acc = 0;
                        for (int j = 0; j < n; j++) acc += Math.Exp(s[j] - max) / sum * v[j][h * hd + e];
                        ctx[i][h * hd + e] = (float)acc;
                    }
                }
            }
            var o = Lin(ctx, "attention.output.dense");
            x = AddNorm(x, o, w.Get(p + "attention.output.LayerNorm.weight"), w.Get(p + "attention.output.LayerNorm.bias"), c.LayerNormEps);
            var up = Lin(x, "intermediate.dense");
            foreach (var r in up) BertOpsReference.Gelu(r);
            var down = Lin(up, "output.dense");
            x = AddNorm(x, down, w.Get(p + "output.LayerNorm.weight"), w.Get(p + "output.LayerNorm.bias"), c.LayerNormEps);
        }
        return x;
    }

    /// <summary>y = W x + b with W [out, in] row-major.</summary>
    static float[] Linear(float[] x, float[] wt, float[] b)
    {
        var y = new float[b.Length];
        for (int o = 0; o < y.Length; o++)
        {
            double acc = b[o];
            for (int i = 0; i < x.Length; i++) acc += (double)wt[o * x.Length + i] * x[i];
            y[o] = (float)acc;
        }
        return y;
    }

    static float[][] AddNorm(float[][] x, float[][] delta, float[] w, float[] b, float eps) =>
        [.. x.Select((r, t) =>
        {
            var sum = r.Select((v, i) => v + delta[t][i]).ToArray();
            var y = new float[r.Length];
            BertOpsReference.LayerNorm(sum, w, b, eps, y);
            return y;
        })];
}
