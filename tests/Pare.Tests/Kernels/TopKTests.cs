using Pare.Kernels;

namespace Pare.Tests.Kernels;

public class TopKTests
{
    [Theory]
    [InlineData(15679, false, false)]   // TokenSelect's candidates at 16k
    [InlineData(1000, true, false)]     // heavy ties
    [InlineData(20000, true, false)]    // heavy ties, the bisection moving its range to the front
    [InlineData(333, false, true)]      // negative values and zeros too
    [InlineData(1, false, false)]
    public void Kth_largest_matches_a_sort(int n, bool ties, bool signed)
    {
        var rng = new Random(n);
        var x = new float[n];
        for (int i = 0; i < n; i++)
            x[i] = ties ? rng.Next(6) : signed ? (rng.Next(10) == 0 ? 0f : (float)(rng.NextDouble() * 2 - 1)) : (float)rng.NextDouble() * 1e-3f;
        foreach (int k in new[] { 1, 2, n / 11 + 1, n / 2 + 1, n })
        {
            if (k > n) continue;
            Assert.Equal(TopK.KthLargestReference(x, k), TopK.KthLargest(x, k));
            var top = new int[k];
            TopK.Indices(x, k, top);
            Assert.Equal(TopK.IndicesReference(x, k), top);   // ties at the k-th: the lowest indices
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => TopK.KthLargest(x, n + 1));
    }
}
