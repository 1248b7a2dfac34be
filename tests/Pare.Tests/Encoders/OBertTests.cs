using Pare.Models.Bert;
using Pare.Pruning;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Encoders;

/// <summary>oBERT: the block Fisher, the OBS update, and on the real encoder.</summary>
public class OBertTests
{
    /// <summary>Gradients with correlated entries (a low-rank factor plus noise), rows × cols each.</summary>
    static float[][] Gradients(int count, int size, int seed)
    {
        var rng = new Random(seed);
        var basis = Enumerable.Range(0, 6).Select(_ => Enumerable.Range(0, size).Select(_ => rng.NextDouble() - 0.5).ToArray()).ToArray();
        return [.. Enumerable.Range(0, count).Select(_ =>
        {
            var z = basis.Select(_ => rng.NextDouble() * 2 - 1).ToArray();
            return Enumerable.Range(0, size).Select(i => (float)(basis.Select((b, k) => b[i] * z[k]).Sum() + 0.05 * (rng.NextDouble() - 0.5))).ToArray();
        })];
    }

    [Fact]
    public void The_block_fisher_is_the_sum_of_outer_products_within_each_block()
    {
        var g = Gradients(7, 5 * 9, 1);
        var f = new BlockFisher(5, 9, blockSize: 10);           // 45 weights: four blocks of 10 and one of 5
        f.Add(g, 4, threads: 2);
        f.Add(g.Skip(4).ToArray(), 3, threads: 1);
        Assert.Equal(5, f.Blocks);
        Assert.Equal(5, f.Length(4));
        Assert.Equal(7, f.Samples);
        for (int blk = 0; blk < f.Blocks; blk++)
        {
            int len = f.Length(blk);
            var a = new double[len * len];
            f.Damped(blk, 0.25, a);
            for (int i = 0; i < len; i++)
                for (int j = 0; j < len; j++)
                {
                    double want = g.Sum(x => (double)x[blk * 10 + i] * x[blk * 10 + j]) / 7 + (i == j ? 0.25 : 0);
                    Assert.True(Math.Abs(a[i * len + j] - want) < 1e-5, $"block {blk} ({i}, {j}): {a[i * len + j]} vs {want}");
                }
        }
    }

    [Theory]
    [InlineData("0.6")]
    [InlineData("2:4")]
    public void The_update_is_the_optimum_of_the_fisher_quadratic_for_the_mask_and_beats_no_update(string pattern)
    {
        int rows = 6, cols = 40, bs = 12;
        var g = Gradients(64, rows * cols, 2);
        var f = new BlockFisher(rows, cols, bs);
        f.Add(g, g.Length, threads: 2);
        var rng = new Random(3);
        var w0 = Enumerable.Range(0, rows * cols).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var w = (float[])w0.Clone();
        var mask = new bool[w.Length];
        var pat = pattern.Contains(':') ? SparsityPattern.Parse(pattern, 0) : SparsityPattern.Unstructured(0.6);
        const double damp = 1e-3;
        OBert.Prune(w, rows, cols, f, pat, mask, damp, threads: 2);
        Assert.Equal(Masks.Count(pat.Ratio, w.Length), mask.Count(m => m));
        for (int i = 0; i < w.Length; i++) if (mask[i]) Assert.Equal(0f, w[i]);
        if (pat.IsNM)
            for (int q = 0; q < w.Length; q += 4) Assert.Equal(2, mask.AsSpan(q, 4).ToArray().Count(m => m));
        double lambda = damp * f.MeanDiagonal();
        // Per block: δ = w - w0 minimizes ½ δᵀ F δ with δ_Q = -w0_Q, so (F δ)_K = 0; and the loss is below zeroing alone.
        double withUpdate = 0, withoutUpdate = 0;
        for (int blk = 0; blk < f.Blocks; blk++)
        {
            int len = f.Length(blk), start = blk * bs;
            var a = new double[len * len];
            f.Damped(blk, lambda, a);
            var delta = Enumerable.Range(0, len).Select(i => (double)w[start + i] - w0[start + i]).ToArray();
            var zeroOnly = Enumerable.Range(0, len).Select(i => mask[start + i] ? -(double)w0[start + i] : 0).ToArray();
            double scale = 0;
            for (int i = 0; i < len; i++) for (int j = 0; j < len; j++) scale = Math.Max(scale, Math.Abs(a[i * len + j] * zeroOnly[j]));
            for (int i = 0; i < len; i++)
            {
                double fd = 0, fz = 0;
                for (int j = 0; j < len; j++) { fd += a[i * len + j] * delta[j]; fz += a[i * len + j] * zeroOnly[j]; }
                if (!mask[start + i]) Assert.True(Math.Abs(fd) <= 1e-4 * scale + 1e-9, $"block {blk} kept {i}: (F delta) = {fd}");
                withUpdate += 0.5 * delta[i] * fd;
                withoutUpdate += 0.5 * zeroOnly[i] * fz;
            }
        }
        Assert.True(withUpdate < 0.8 * withoutUpdate, $"loss with update {withUpdate:G4} vs mask alone {withoutUpdate:G4}");
    }

    [Fact]
    public void Without_gradient_signal_obert_is_magnitude_pruning()
    {
        var rng = new Random(4);
        var w = Enumerable.Range(0, 8 * 30).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var f = new BlockFisher(8, 30);
        f.Add([new float[8 * 30]], 1);
        var byObert = (float[])w.Clone();
        var byMagnitude = (float[])w.Clone();
        OBert.Prune(byObert, 8, 30, f, SparsityPattern.Unstructured(0.5), new bool[w.Length]);
        Magnitude.Prune(byMagnitude, 8, 30, SparsityPattern.Unstructured(0.5), new bool[w.Length]);
        Assert.Equal(byMagnitude, byObert);
    }

    [Fact]
    public void On_minilm_at_70_percent_obert_keeps_embeddings_closer_to_dense_than_magnitude()
    {
        var dense = EncoderModels.Model(EncoderModels.MiniLm);
        // m = 64 gradients (32 leave the 50-weight blocks' Fisher rank-deficient, and oBERT close to magnitude).
        var calib = EncoderModels.TestSentences(64, seed: 11).Select(s => dense.Tokenize(s).Ids).ToArray();
        var texts = EncoderModels.TestSentences(12, seed: 12);
        var want = dense.Embed(texts, new EmbedOptions { Threads = 2 }).Vectors;
        double Cos(PruneMethod m)
        {
            var t = BertPruner.Prune(dense, calib, new BertPruneOptions { Method = m, Pattern = SparsityPattern.Unstructured(0.7), Threads = 2 });
            Assert.InRange(BertPruner.Sparsity(dense.Config, t), 0.699, 0.701);
            var got = new BertModel(dense.Config, t, dense.Tokenizer.Vocab).Embed(texts, new EmbedOptions { Threads = 2 }).Vectors;
            return want.Zip(got).Average(p => SentencePooling.Cosine(p.First, p.Second));
        }
        double mag = Cos(PruneMethod.Magnitude), obert = Cos(PruneMethod.OBert);
        Assert.True(obert > mag + 0.05, $"oBERT {obert:F4} vs magnitude {mag:F4}");
    }
}
