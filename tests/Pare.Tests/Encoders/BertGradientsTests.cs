using Pare.Models.Bert;
using Pare.Training;

namespace Pare.Tests.Encoders;

/// <summary>The encoder's backward pass (per-sentence weight gradients) against finite differences of the reference forward.</summary>
public class BertGradientsTests
{
    /// <summary>½‖ê − target‖² of one sentence through <see cref="BertEncoderReference"/>, pooled and normalized in double.</summary>
    static double Loss(BertConfig c, BertTensors t, int[] ids, float[] target)
    {
        var x = BertEncoderReference.Forward(c, t, ids);
        var e = new double[c.Dim];
        if (c.Pooling == BertPooling.Cls) for (int i = 0; i < c.Dim; i++) e[i] = x[0][i];
        else { foreach (var r in x) for (int i = 0; i < c.Dim; i++) e[i] += r[i] / (double)x.Length; }
        double norm = c.Normalize ? Math.Sqrt(e.Sum(v => v * v)) : 1;
        double l = 0;
        for (int i = 0; i < c.Dim; i++) { double z = e[i] / norm - target[i]; l += 0.5 * z * z; }
        return l;
    }

    [Theory]
    [InlineData(BertPooling.Mean, true, 0, 0)]
    [InlineData(BertPooling.Mean, true, 0, 1)]
    [InlineData(BertPooling.Cls, true, 1, 1)]
    [InlineData(BertPooling.Mean, false, 1, 2)]
    [InlineData(BertPooling.Cls, false, 0, 1)]
    public void Per_sentence_weight_gradients_equal_finite_differences(BertPooling pooling, bool normalize, int from, int layer)
    {
        var (c0, t) = BertEncoderTests.Random(16, 2, 32, 3, vocab: 30, seed: 3);
        var c = c0 with { Pooling = pooling, Normalize = normalize };
        var rng = new Random(4);
        int[][] batch = [.. new[] { 5, 1, 9 }.Select(n => Enumerable.Range(0, n).Select(_ => rng.Next(c.VocabSize)).ToArray())];
        var targets = batch.Select(_ => Enumerable.Range(0, c.Dim).Select(_ => (float)(rng.NextDouble() - 0.5) * 0.5f).ToArray()).ToArray();
        var enc = new BertEncoder(c, new BertWeights(c, t));
        var h = enc.Embed(batch);
        for (int l = 0; l < from; l++) enc.RunLayer(l, h, 1);
        var g = new BertGradients(c, t, threads: 2);
        var tape = g.Forward(h, from);
        // The tape's sentence vectors are the encoder's.
        var want = SentencePooling.Pool(enc.Forward(batch, 1), pooling, normalize);
        for (int s = 0; s < batch.Length; s++)
            for (int i = 0; i < c.Dim; i++) Assert.True(Math.Abs(tape.Embeddings[s][i] - want[s][i]) < 1e-4, $"embedding {s}/{i}");
        var dEmb = tape.Embeddings.Select((e, s) => e.Select((v, i) => v - targets[s][i]).ToArray()).ToArray();
        var shapes = BertGradients.Matrices.Select(m => t.Shape($"encoder.layer.{layer}.{m}.weight")).ToArray();
        var grads = shapes.Select(sh => batch.Select(_ => new float[sh[0] * sh[1]]).ToArray()).ToArray();
        g.Backward(tape, dEmb, layer, grads);
        const float eps = 4e-3f; // float rounding of the reference forward: ~1e-4 noise in the quotient for the unnormalized losses
        int checkedCount = 0;
        double fdSum = 0;
        for (int m = 0; m < BertGradients.Matrices.Length; m++)
        {
            var w = t.Get($"encoder.layer.{layer}.{BertGradients.Matrices[m]}.weight");
            for (int probe = 0; probe < 6; probe++)
            {
                int idx = rng.Next(w.Length);
                float keep = w[idx];
                for (int s = 0; s < batch.Length; s++)
                {
                    w[idx] = keep + eps; double up = Loss(c, t, batch[s], targets[s]);
                    w[idx] = keep - eps; double down = Loss(c, t, batch[s], targets[s]);
                    w[idx] = keep;
                    double fd = (up - down) / (2 * eps), an = grads[m][s][idx];
                    Assert.True(Math.Abs(an - fd) <= 2e-4 + 0.02 * Math.Abs(fd), $"{BertGradients.Matrices[m]}[{idx}] sentence {s}: backward {an:G6} vs finite difference {fd:G6}");
                    checkedCount++;
                    fdSum += Math.Abs(fd);
                }
            }
        }
        // The check is not vacuous: the gradients are not all ~0.
        Assert.True(grads.Sum(m => m.Sum(s => s.Sum(v => (double)v * v))) > 1e-4);
        Assert.Equal(6 * 6 * 3, checkedCount);
        // ... and the entries checked are well above the absolute tolerance on average.
        Assert.True(fdSum / checkedCount > 1e-3, $"mean |finite difference| {fdSum / checkedCount:G3}");
    }

    [Fact]
    public void A_sentences_gradient_does_not_depend_on_the_others_in_the_packed_batch()
    {
        var (c, t) = BertEncoderTests.Random(16, 2, 32, 2, vocab: 30, seed: 5);
        var rng = new Random(6);
        int[][] batch = [.. new[] { 4, 7, 3 }.Select(n => Enumerable.Range(0, n).Select(_ => rng.Next(c.VocabSize)).ToArray())];
        var enc = new BertEncoder(c, new BertWeights(c, t));
        var g = new BertGradients(c, t, threads: 1);
        float[][][] Run(int[][] b)
        {
            var tape = g.Forward(enc.Embed(b), 0);
            var d = tape.Embeddings.Select(e => e.Select(v => v * 0.3f + 0.1f).ToArray()).ToArray();
            var grads = BertGradients.Matrices.Select(m => b.Select(_ => new float[t.Get($"encoder.layer.0.{m}.weight").Length]).ToArray()).ToArray();
            g.Backward(tape, d, 0, grads);
            return grads;
        }
        var all = Run(batch);
        var alone = Run([batch[1]]);
        for (int m = 0; m < all.Length; m++)
            for (int i = 0; i < all[m][1].Length; i++)
                Assert.True(Math.Abs(all[m][1][i] - alone[m][0][i]) < 1e-5, $"{BertGradients.Matrices[m]}[{i}]");
    }
}
