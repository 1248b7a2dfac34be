using Pare.Training.Kernels;
using Pare.Training.Ops;

namespace Pare.Tests.Training;

/// <summary>Every op's backward pass against finite differences of its forward pass (loss = Σ r ⊙ y with random r).</summary>
public class OpGradientTests
{
    [Fact]
    public void Embedding_backward_scatters_rows()
    {
        int vocab = 5, dim = 3;
        int[] tokens = [1, 3, 1];
        var table = GradCheck.Random(vocab * dim, 1);
        var r = GradCheck.Random(tokens.Length * dim, 2);
        var y = new float[tokens.Length * dim];
        double Loss() { Embedding.Forward(tokens, table, dim, y); return GradCheck.Dot(r, y); }
        var dTable = new float[vocab * dim];
        Embedding.Backward(tokens, r, dim, dTable);
        GradCheck.Check("dE", table, dTable, Loss);
    }

    [Fact]
    public void RmsNorm_gradients()
    {
        int n = 3, d = 8;
        var x = GradCheck.Random(n * d, 1);
        var w = GradCheck.Random(d, 2);
        var r = GradCheck.Random(n * d, 3);
        var y = new float[n * d];
        var rstd = new float[n];
        double Loss() { RmsNorm.Forward(x, w, 1e-5f, n, d, y, rstd); return GradCheck.Dot(r, y); }
        Loss();
        var dx = new float[n * d];
        var dw = new float[d];
        RmsNorm.Backward(r, x, w, rstd, n, d, dx, dw);
        GradCheck.Check("dx", x, dx, Loss);
        GradCheck.Check("dw", w, dw, Loss);
    }

    [Fact]
    public void Rope_gradient_is_the_inverse_rotation()
    {
        int n = 6, seq = 3, heads = 2, hd = 8;
        var rope = new Rope(seq, hd, 10000f);
        var x = GradCheck.Random(n * heads * hd, 1);
        var r = GradCheck.Random(n * heads * hd, 2);
        double Loss() { var y = (float[])x.Clone(); rope.Forward(y, n, seq, heads, hd); return GradCheck.Dot(r, y); }
        var dx = (float[])r.Clone();
        rope.Backward(dx, n, seq, heads, hd);
        GradCheck.Check("dx", x, dx, Loss);
    }

    [Fact]
    public void Rope_forward_matches_the_engine()
    {
        int heads = 2, hd = 8, pos = 5;
        var x = GradCheck.Random(heads * hd, 1);
        var expected = (float[])x.Clone();
        Pare.Kernels.OpsReference.Rope(expected, heads, hd, hd, pos, 10000f, Pare.Tensors.RopeLayout.Interleaved);
        var rows = new float[(pos + 1) * heads * hd];
        x.CopyTo(rows, pos * heads * hd);
        new Rope(pos + 1, hd, 10000f).Forward(rows, pos + 1, pos + 1, heads, hd);
        Assert.Equal(expected, rows[(pos * heads * hd)..]);
    }

    [Fact]
    public void SwiGlu_gradients()
    {
        int n = 40;
        var g = GradCheck.Random(n, 1, 3f);
        var u = GradCheck.Random(n, 2, 2f);
        var r = GradCheck.Random(n, 3);
        var h = new float[n];
        double Loss() { SwiGlu.Forward(g, u, h); return GradCheck.Dot(r, h); }
        var dg = new float[n];
        var du = new float[n];
        SwiGlu.Backward(g, u, r, dg, du);
        GradCheck.Check("dg", g, dg, Loss);
        GradCheck.Check("du", u, du, Loss);
    }

    [Fact]
    public void Linear_gradients()
    {
        int n = 5, inDim = 20, outDim = 7;
        var x = GradCheck.Random(n * inDim, 1);
        var w = GradCheck.Random(outDim * inDim, 2);
        var wT = new float[w.Length];
        var r = GradCheck.Random(n * outDim, 3);
        var y = new float[n * outDim];
        double Loss() { Linear.Transpose(w, outDim, inDim, wT); Linear.Forward(x, wT, n, inDim, outDim, y, 1); return GradCheck.Dot(r, y); }
        // The forward pass is y = x · Wᵀ, summed by hand.
        Loss();
        for (int t = 0; t < n; t++)
            for (int o = 0; o < outDim; o++)
            {
                double s = 0;
                for (int i = 0; i < inDim; i++) s += x[t * inDim + i] * w[o * inDim + i];
                Assert.Equal(s, y[t * outDim + o], 4);
            }
        var dw = new float[outDim * inDim];
        var dx = new float[n * inDim];
        Linear.Backward(r, x, w, n, outDim, inDim, dw, dx, false, 2);
        GradCheck.Check("dx", x, dx, Loss);
        GradCheck.Check("dW", w, dw, Loss);
    }

    [Fact]
    public void CrossEntropy_gradient_and_value()
    {
        int n = 3, vocab = 11;
        var z = GradCheck.Random(n * vocab, 1, 3f);
        int[] targets = [0, 5, 10];
        double Loss() => CrossEntropy.ForwardBackward((float[])z.Clone(), targets, vocab, 0f, 1);
        // Value: -log softmax(target), by hand for row 0.
        double lse = Math.Log(Enumerable.Range(0, vocab).Sum(i => Math.Exp(z[i])));
        Assert.Equal(lse - z[0], CrossEntropy.ForwardBackward((float[])z[..vocab].Clone(), [0], vocab, 0f, 1), 5);
        var dz = (float[])z.Clone();
        CrossEntropy.ForwardBackward(dz, targets, vocab, 1f, 2);
        GradCheck.Check("dz", z, dz, Loss, eps: 1e-3f);
    }

    [Theory]
    [InlineData(4, 4)]
    [InlineData(4, 2)]
    [InlineData(6, 1)]
    public void Attention_gradients(int heads, int kvHeads)
    {
        var s = new AttentionShape(Batch: 2, SeqLen: 5, Heads: heads, KvHeads: kvHeads, HeadDim: 4);
        int rows = s.Batch * s.SeqLen;
        var q = GradCheck.Random(rows * s.QDim, 1, 1.5f);
        var k = GradCheck.Random(rows * s.KvDim, 2, 1.5f);
        var v = GradCheck.Random(rows * s.KvDim, 3);
        var r = GradCheck.Random(rows * s.QDim, 4);
        var o = new float[rows * s.QDim];
        double Loss() { Attention.Forward(q, k, v, o, s, 1); return GradCheck.Dot(r, o); }
        var dq = new float[q.Length];
        var dk = new float[k.Length];
        var dv = new float[v.Length];
        Attention.Backward(q, k, v, r, dq, dk, dv, s, 2);
        GradCheck.Check("dq", q, dq, Loss, maxChecks: 80);
        GradCheck.Check("dk", k, dk, Loss, maxChecks: 80);
        GradCheck.Check("dv", v, dv, Loss, maxChecks: 80);
    }

    /// <summary>Real head widths (32, 64) and lengths that use every tile of the vector kernels, against plain loops in double.</summary>
    [Theory]
    [InlineData(100, 32, 4, 2)]
    [InlineData(37, 64, 2, 1)]
    public void Attention_vector_kernels_match_a_plain_reference(int seqLen, int hd, int heads, int kvHeads)
    {
        var s = new AttentionShape(2, seqLen, heads, kvHeads, hd);
        int rows = 2 * seqLen;
        var q = GradCheck.Random(rows * s.QDim, 1);
        var k = GradCheck.Random(rows * s.KvDim, 2);
        var v = GradCheck.Random(rows * s.KvDim, 3);
        var dO = GradCheck.Random(rows * s.QDim, 4);
        var o = new float[q.Length];
        var (dq, dk, dv) = (new float[q.Length], new float[k.Length], new float[v.Length]);
        Attention.Forward(q, k, v, o, s, 2);
        Attention.Backward(q, k, v, dO, dq, dk, dv, s, 2);
        var (eo, edq, edk, edv) = DoubleAttention(q, k, v, dO, s);
        static void Near(string what, float[] got, double[] want)
        {
            for (int i = 0; i < got.Length; i++) Assert.True(Math.Abs(got[i] - want[i]) <= 1e-4 * (1 + Math.Abs(want[i])), $"{what}[{i}]: {got[i]} vs {want[i]}");
        }
        Near("o", o, eo); Near("dq", dq, edq); Near("dk", dk, edk); Near("dv", dv, edv);
    }

    /// <summary>Causal attention and its gradients in plain loops in double (batch of <c>s.Batch</c>), the reference of the vector kernels.</summary>
    internal static (double[] O, double[] Dq, double[] Dk, double[] Dv) DoubleAttention(float[] q, float[] k, float[] v, float[] dO, AttentionShape s)
    {
        int seqLen = s.SeqLen, heads = s.Heads, hd = s.HeadDim, group = s.Heads / s.KvHeads;
        var (eo, edq, edk, edv) = (new double[q.Length], new double[q.Length], new double[k.Length], new double[v.Length]);
        for (int b = 0; b < s.Batch; b++)
            for (int h = 0; h < heads; h++)
                for (int t = 0; t < seqLen; t++)
                {
                    int kvh = h / group, qo = (b * seqLen + t) * s.QDim + h * hd;
                    int Ko(int j) => (b * seqLen + j) * s.KvDim + kvh * hd;
                    var p = new double[t + 1];
                    for (int j = 0; j <= t; j++) { for (int d = 0; d < hd; d++) p[j] += (double)q[qo + d] * k[Ko(j) + d]; p[j] /= Math.Sqrt(hd); }
                    double max = p.Max(), sum = p.Sum(x => Math.Exp(x - max));
                    for (int j = 0; j <= t; j++) p[j] = Math.Exp(p[j] - max) / sum;
                    var dp = new double[t + 1];
                    for (int j = 0; j <= t; j++)
                        for (int d = 0; d < hd; d++) { eo[qo + d] += p[j] * v[Ko(j) + d]; dp[j] += (double)dO[qo + d] * v[Ko(j) + d]; edv[Ko(j) + d] += p[j] * dO[qo + d]; }
                    double pd = Enumerable.Range(0, t + 1).Sum(j => p[j] * dp[j]);
                    for (int j = 0; j <= t; j++)
                    {
                        double ds = p[j] * (dp[j] - pd) / Math.Sqrt(hd);
                        for (int d = 0; d < hd; d++) { edq[qo + d] += ds * k[Ko(j) + d]; edk[Ko(j) + d] += ds * q[qo + d]; }
                    }
                }
        return (eo, edq, edk, edv);
    }

    [Fact]
    public void Attention_is_causal_and_matches_a_direct_softmax()
    {
        var s = new AttentionShape(1, 3, 1, 1, 2);
        float[] q = [1, 0, 0, 1, 1, 1], k = [1, 0, 0, 1, 1, 1], v = [1, 2, 3, 4, 5, 6];
        var o = new float[6];
        Attention.Forward(q, k, v, o, s, 1);
        Assert.Equal([1f, 2f], o[..2]); // position 0 sees only itself
        double sc = 1 / Math.Sqrt(2), e0 = Math.Exp(0 * sc), e1 = Math.Exp(1 * sc);
        Assert.Equal((e0 * 1 + e1 * 3) / (e0 + e1), o[2], 5);
    }

    [Theory]
    [InlineData(7, 70, 130)]
    [InlineData(64, 128, 256)]
    [InlineData(1, 3, 64)]
    [InlineData(300, 270, 112)] // shared dimensions past one 256 chunk; 64 + 32 + 16 column tiles
    public void GradMatMul_matches_reference(int n, int outDim, int inDim)
    {
        var dy = GradCheck.Random(n * outDim, 1);
        var w = GradCheck.Random(outDim * inDim, 2);
        var x = GradCheck.Random(n * inDim, 3);
        var dx = GradCheck.Random(n * inDim, 4);
        var dxRef = (float[])dx.Clone();
        GradMatMul.InputGrad(dy, w, dx, n, outDim, inDim, accumulate: true, threads: 2);
        GradMatMulReference.InputGrad(dy, w, dxRef, n, outDim, inDim, accumulate: true);
        for (int i = 0; i < dx.Length; i++) Assert.True(Math.Abs(dx[i] - dxRef[i]) <= 1e-4f * (1 + Math.Abs(dxRef[i])), $"dx[{i}] {dx[i]} vs {dxRef[i]}");
        var dw = GradCheck.Random(outDim * inDim, 5);
        var dwRef = (float[])dw.Clone();
        GradMatMul.WeightGrad(dy, x, dw, n, outDim, inDim, threads: 2);
        GradMatMulReference.WeightGrad(dy, x, dwRef, n, outDim, inDim);
        for (int i = 0; i < dw.Length; i++) Assert.True(Math.Abs(dw[i] - dwRef[i]) <= 1e-4f * (1 + Math.Abs(dwRef[i])), $"dw[{i}] {dw[i]} vs {dwRef[i]}");
        // Thread count does not change a single bit.
        var dw1 = (float[])dwRef.Clone();
        var dw2 = (float[])dwRef.Clone();
        GradMatMul.WeightGrad(dy, x, dw1, n, outDim, inDim, threads: 1);
        GradMatMul.WeightGrad(dy, x, dw2, n, outDim, inDim, threads: 3);
        Assert.Equal(dw1, dw2);
    }
}
