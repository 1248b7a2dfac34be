namespace Pare.Models.Bert;

/// <summary>Sentence vectors from token states: mean or [CLS] pooling, then (optionally) L2 normalization.</summary>
public static class SentencePooling
{
    public static float[][] Pool(BertHidden h, BertPooling pooling, bool normalize)
    {
        var result = new float[h.Sentences][];
        for (int s = 0; s < h.Sentences; s++)
        {
            var e = new float[h.Dim];
            if (pooling == BertPooling.Cls) h.Row(s, 0).CopyTo(e);
            else
            {
                // Sum in double: sentences of hundreds of tokens lose nothing to float rounding.
                // After token merging a row stands for Sizes[row] input tokens and weighs that much.
                var acc = new double[h.Dim];
                int len = h.Length(s);
                double total = 0;
                for (int t = 0; t < len; t++)
                {
                    var row = h.Row(s, t);
                    double wgt = h.Sizes?[h.Offsets[s] + t] ?? 1.0;
                    total += wgt;
                    for (int i = 0; i < acc.Length; i++) acc[i] += wgt * row[i];
                }
                for (int i = 0; i < e.Length; i++) e[i] = (float)(acc[i] / total);
            }
            if (normalize) L2Normalize(e);
            result[s] = e;
        }
        return result;
    }

    /// <summary>x / max(‖x‖, 1e-12), as torch.nn.functional.normalize.</summary>
    public static void L2Normalize(Span<float> x)
    {
        double ss = 0;
        foreach (float v in x) ss += (double)v * v;
        float inv = (float)(1 / Math.Max(Math.Sqrt(ss), 1e-12));
        for (int i = 0; i < x.Length; i++) x[i] *= inv;
    }

    /// <summary>Cosine similarity in double.</summary>
    public static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double ab = 0, aa = 0, bb = 0;
        for (int i = 0; i < a.Length; i++) { ab += (double)a[i] * b[i]; aa += (double)a[i] * a[i]; bb += (double)b[i] * b[i]; }
        return ab / Math.Sqrt(aa * bb + 1e-300);
    }
}
