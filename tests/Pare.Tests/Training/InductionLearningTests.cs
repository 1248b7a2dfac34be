using Pare.Training;

namespace Pare.Tests.Training;

/// <summary>
/// The trainer forms an induction head (look up the earlier occurrence of the current token, copy what followed it), the
/// circuit every retrieval task needs: sequences are a span of 8-16 uniform random tokens repeated to fill the window, so
/// the copy distance varies from sequence to sequence and no fixed-offset head can predict the repeats.
/// </summary>
public class InductionLearningTests
{
    /// <summary>Mean loss on the positions whose target is a repeat, on a fixed batch, after training.</summary>
    static double CopyLoss(float initStd, int steps, int seed)
    {
        const int vocab = 32, seqLen = 64, batch = 32, lmin = 8, lmax = 16;
        var cfg = new ModelShape { Dim = 64, Layers = 2, Heads = 4, KvHeads = 4, FfnDim = 128, ContextLength = seqLen, TiedEmbeddings = true };
        var p = new ParameterStore(cfg.ToLlama(vocab));
        p.Initialize((ulong)seed + 2, initStd);
        var model = new TrainingModel(p, batch, seqLen, 2);
        var adam = new AdamW(p, 0.9f, 0.95f, 1e-8f, 0f);
        var inputs = new int[batch * seqLen];
        var targets = new int[batch * seqLen];
        var spans = new int[batch];
        void Fill(Random r)
        {
            for (int b = 0; b < batch; b++)
            {
                int len = spans[b] = r.Next(lmin, lmax + 1);
                var span = Enumerable.Range(0, len).Select(_ => r.Next(vocab)).ToArray();
                for (int t = 0; t < seqLen; t++) (inputs[b * seqLen + t], targets[b * seqLen + t]) = (span[t % len], span[(t + 1) % len]);
            }
        }
        var rng = new Random(seed);
        for (int step = 0; step < steps; step++)
        {
            Fill(rng);
            Array.Clear(p.Grads);
            model.Step(inputs, targets, 1f / inputs.Length);
            GradClip.Clip(p.Grads, 1f, 2);
            adam.Update(3e-3f, 2);
        }
        Fill(new Random(999));
        model.Forward(inputs);
        var z = model.Logits(inputs.Length);
        double sum = 0;
        int n = 0;
        for (int b = 0; b < batch; b++)
            for (int t = spans[b] - 1; t < seqLen; t++)
            {
                var row = z.Slice((b * seqLen + t) * vocab, vocab);
                float max = float.MinValue;
                foreach (float x in row) max = Math.Max(max, x);
                double se = 0;
                foreach (float x in row) se += Math.Exp(x - max);
                sum += Math.Log(se) + max - row[targets[b * seqLen + t]];
                n++;
            }
        return sum / n;
    }

    /// <remarks>
    /// Measured (docs/long-context.md, stage 4): with init std 0.125 (≈ 1/sqrt(dim)) the copy loss falls from ln 32 = 3.47
    /// to 0.29 / 0.29 / 0.40 after 500 steps (seeds 1 / 2 / 3), after a plateau near 2.5 up to step ~300; with the
    /// trainer's default 0.02 (GPT-2's value for width 768) it is still 2.43 at step 500 and 1.96 at step 1,000: tiny
    /// initial query/key weights make the induction plateau long.
    /// </remarks>
    [Fact]
    public void Induction_at_varying_distances_is_learned_in_500_steps()
    {
        double loss = CopyLoss(0.125f, steps: 500, seed: 1);
        Assert.True(loss < 1.0, $"copy loss {loss:F3} after 500 steps (ln 32 = 3.47 without induction, 0 with it)");
    }
}
