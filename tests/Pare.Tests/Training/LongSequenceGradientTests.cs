using Pare.Training;
using Pare.Training.Ops;

namespace Pare.Tests.Training;

/// <summary>
/// Gradients at sequence lengths past every tile and column-block boundary of the training attention kernels (tiles of 4
/// rows, column blocks of 16/32/64, causal column bounds rounded up to 16): a bug that only shows at longer sequences would
/// stop a model from learning to look far back while every short gradient check passes.
/// </summary>
public class LongSequenceGradientTests
{
    /// <summary>The attention op against plain loops in double, every element of o, dq, dk, dv.</summary>
    [Theory]
    [InlineData(65, 16, 4, 2)]
    [InlineData(130, 32, 8, 4)]
    [InlineData(260, 8, 4, 1)]
    [InlineData(260, 32, 2, 2)]
    public void Attention_matches_a_double_reference_past_the_tile_boundaries(int seqLen, int hd, int heads, int kvHeads)
    {
        var s = new AttentionShape(2, seqLen, heads, kvHeads, hd);
        int rows = 2 * seqLen;
        // Large scores (scale 2) make the softmax peaked, as in a trained head.
        var q = GradCheck.Random(rows * s.QDim, 11, 2f);
        var k = GradCheck.Random(rows * s.KvDim, 12, 2f);
        var v = GradCheck.Random(rows * s.KvDim, 13);
        var dO = GradCheck.Random(rows * s.QDim, 14);
        var o = new float[q.Length];
        var (dq, dk, dv) = (new float[q.Length], new float[k.Length], new float[v.Length]);
        Attention.Forward(q, k, v, o, s, 2);
        Attention.Backward(q, k, v, dO, dq, dk, dv, s, 2);
        var (eo, edq, edk, edv) = OpGradientTests.DoubleAttention(q, k, v, dO, s);
        Near("o", o, eo); Near("dq", dq, edq); Near("dk", dk, edk); Near("dv", dv, edv);

        static void Near(string what, float[] got, double[] want)
        {
            double worst = 0;
            int at = -1;
            for (int i = 0; i < got.Length; i++)
            {
                double e = Math.Abs(got[i] - want[i]) / (1 + Math.Abs(want[i]));
                if (e > worst) (worst, at) = (e, i);
            }
            Assert.True(worst <= 2e-4, $"{what}[{at}]: {(at < 0 ? 0 : got[at])} vs {(at < 0 ? 0 : want[at])}");
        }
    }

    /// <summary>
    /// The whole model (2 blocks, RoPE, grouped-query attention, tied embeddings) at long sequences: for every tensor, the
    /// derivative along a random ±1 direction against central differences of the loss.
    /// </summary>
    [Theory]
    [InlineData(65)]
    [InlineData(130)]
    [InlineData(260)]
    public void Whole_model_directional_derivatives_hold_at_long_sequences(int seqLen)
    {
        var shape = new ModelShape { Dim = 32, Layers = 2, Heads = 4, KvHeads = 2, FfnDim = 48, ContextLength = seqLen, TiedEmbeddings = true };
        const int vocab = 40, seqs = 2;
        var p = new ParameterStore(shape.ToLlama(vocab));
        p.Initialize(5, 0.3f);
        foreach (var info in p.All.Where(i => !i.Decay)) GradCheck.Random(info.Cols, info.Name.Length).Select(v => 1 + 0.3f * v).ToArray().CopyTo(p.Value(info));
        var model = new TrainingModel(p, seqs, seqLen, 2);
        // Repeated spans, so attention far back carries the signal (as in copy training).
        var r = new Random(seqLen);
        var span = Enumerable.Range(0, 23).Select(_ => r.Next(vocab)).ToArray();
        int n = seqs * seqLen;
        int[] inputs = [.. Enumerable.Range(0, n).Select(i => span[(i * 7 + i / 23) % 23])];
        int[] targets = [.. Enumerable.Range(0, n).Select(i => span[(i * 7 + i / 23 + 1) % 23])];
        p.ZeroGrads();
        model.Step(inputs, targets, 1f / n);
        var grads = (float[])p.Grads.Clone();
        double Loss() => model.Step(inputs, targets, 0f) / n;
        // Small steps: with ±1 over a whole tensor the curvature term (∝ eps²) is 4% at eps 2e-3, under 0.3% at 5e-4.
        const float eps = 5e-4f;
        foreach (var info in p.All)
        {
            var rng = new Random(info.Name.Length * 31 + (int)info.Offset);
            var u = Enumerable.Range(0, (int)info.Length).Select(_ => rng.Next(2) == 0 ? -1f : 1f).ToArray();
            var w = p.Value(info);
            var saved = w.ToArray();
            double analytic = 0;
            for (int i = 0; i < u.Length; i++) analytic += (double)u[i] * grads[info.Offset + i];
            for (int i = 0; i < u.Length; i++) w[i] = saved[i] + eps * u[i];
            double lp = Loss();
            for (int i = 0; i < u.Length; i++) w[i] = saved[i] - eps * u[i];
            double lm = Loss();
            saved.CopyTo(w);
            double numeric = (lp - lm) / (2 * eps);
            Assert.True(Math.Abs(numeric - analytic) <= 2e-3 + 1e-2 * Math.Abs(analytic),
                $"{info.Name} at seq {seqLen}: analytic {analytic:G6}, numeric {numeric:G6}");
        }
    }
}
