using Pare.Kernels;
using static Pare.Tests.Kernels.KernelTestUtil;

namespace Pare.Tests.Kernels;

public class AttentionTests
{
    /// <summary>Plain causal grouped-query attention in double precision; with parents, new token t sees the prefix and its ancestors.</summary>
    internal static float[] Reference(float[] q, int n, int heads, int kvHeads, int hd, float[] k, float[] v, int pos0, int[]? parents = null)
    {
        int qd = heads * hd, kvd = kvHeads * hd, group = heads / kvHeads;
        var output = new float[n * qd];
        for (int t = 0; t < n; t++)
            for (int h = 0; h < heads; h++)
            {
                int len = pos0 + t + 1, kvh = h / group;
                var s = new double[len];
                double max = double.NegativeInfinity;
                for (int p = 0; p < len; p++)
                {
                    bool visible = p < pos0 || parents == null;
                    for (int a = t; !visible && a >= 0; a = parents![a]) visible = a == p - pos0;
                    if (!visible) { s[p] = double.NegativeInfinity; continue; }
                    double dot = 0;
                    for (int i = 0; i < hd; i++) dot += (double)q[t * qd + h * hd + i] * k[p * kvd + kvh * hd + i];
                    s[p] = dot / Math.Sqrt(hd);
                    max = Math.Max(max, s[p]);
                }
                double sum = 0;
                for (int p = 0; p < len; p++) { s[p] = Math.Exp(s[p] - max); sum += s[p]; }
                for (int i = 0; i < hd; i++)
                {
                    double o = 0;
                    for (int p = 0; p < len; p++) o += s[p] / sum * v[p * kvd + kvh * hd + i];
                    output[t * qd + h * hd + i] = (float)o;
                }
            }
        return output;
    }

    [Theory]
    [InlineData(1, 0, 1)]    // first decode step
    [InlineData(1, 40, 2)]   // decode over a cache
    [InlineData(7, 0, 2)]    // prefill
    [InlineData(5, 9, 1)]    // a batch after a cache
    [InlineData(16, 100, 2)] // enough work to use the second thread
    public void Matches_reference(int n, int pos0, int threads)
    {
        const int heads = 8, kvHeads = 2, hd = 32;
        var q = Random(n * heads * hd, seed: 1);
        var k = Random((pos0 + n) * kvHeads * hd, seed: 2);
        var v = Random((pos0 + n) * kvHeads * hd, seed: 3);
        var expected = Reference(q, n, heads, kvHeads, hd, k, v, pos0);
        var y = new float[n * heads * hd];
        Attention.CausalGqa(q, n, heads, kvHeads, hd, k, v, pos0, y, threads);
        Assert.True(Nmse(y, expected) < 1e-10, $"nmse {Nmse(y, expected)}");
    }

    [Theory]
    [InlineData(32, 1, 200, false)]  // decode: blocks of 16 positions plus a tail of 9
    [InlineData(32, 8, 13, true)]    // a token tree after a short cache
    [InlineData(64, 5, 40, true)]
    [InlineData(128, 3, 16, false)]
    [InlineData(16, 17, 0, false)]   // prefill from an empty cache
    [InlineData(24, 4, 30, true)]    // head size not a multiple of 16: the portable path
    public void Fast_and_portable_paths_match_reference(int hd, int n, int pos0, bool tree)
    {
        const int heads = 4, kvHeads = 2;
        var q = Random(n * heads * hd, seed: 4);
        var k = Random((pos0 + n) * kvHeads * hd, seed: 5);
        var v = Random((pos0 + n) * kvHeads * hd, seed: 6);
        // A tree: node 0 is the root, every later node hangs under an earlier one (seeded choice).
        var rng = new Random(n);
        int[]? parents = tree ? [.. Enumerable.Range(0, n).Select(i => i == 0 ? -1 : rng.Next(i))] : null;
        var expected = Reference(q, n, heads, kvHeads, hd, k, v, pos0, parents);
        // The fast path needs AVX-512 (production code never asks for it without; see Attention.CausalGqa).
        foreach (bool portable in MatMul.Avx512 ? new[] { false, true } : new[] { true })
            foreach (int threads in new[] { 1, 2 })
            {
                var y = new float[n * heads * hd];
                Attention.CausalGqa(q, n, heads, kvHeads, hd, k, v, pos0, y, threads, parents, portable);
                Assert.True(Nmse(y, expected) < 1e-10, $"portable {portable}, threads {threads}: nmse {Nmse(y, expected)}");
            }
    }
}
