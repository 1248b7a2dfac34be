using Pare.Kernels;
using static Pare.Tests.Kernels.KernelTestUtil;

namespace Pare.Tests.Kernels;

public class AttentionTests
{
    /// <summary>Plain causal grouped-query attention in double precision.</summary>
    static float[] Reference(float[] q, int n, int heads, int kvHeads, int hd, float[] k, float[] v, int pos0)
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
}
