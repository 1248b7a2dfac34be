using Pare.Pruning;

namespace Pare.Tests.Pruning;

public class LinalgTests
{
    static double[] RandomSpd(int n, int seed)
    {
        var rng = new Random(seed);
        var a = new double[n * n];
        for (int i = 0; i < a.Length; i++) a[i] = rng.NextDouble() * 2 - 1;
        var h = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int k = 0; k < n; k++) s += a[i * n + k] * a[j * n + k];
                h[i * n + j] = s + (i == j ? 0.5 : 0);
            }
        return h;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(150)] // crosses the 64-column panels and the 16-column inverse panels
    public void Cholesky_reconstructs_the_matrix(int n)
    {
        var h = RandomSpd(n, n);
        var l = (double[])h.Clone();
        Linalg.CholeskyInPlace(l, n);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                if (j > i) Assert.Equal(0, l[i * n + j]);
                double s = 0;
                for (int k = 0; k < n; k++) s += l[i * n + k] * l[j * n + k];
                Assert.True(Math.Abs(s - h[i * n + j]) < 1e-9 * (1 + Math.Abs(h[i * n + j])), $"({i},{j}): {s} vs {h[i * n + j]}");
            }
    }

    [Theory]
    [InlineData(5)]
    [InlineData(130)]
    public void Upper_cholesky_of_inverse_matches_a_naive_inverse(int n)
    {
        var h = RandomSpd(n, 100 + n);
        var inv = Linalg.NaiveInverse(h, n);
        var u = Linalg.UpperCholeskyOfInverse(h, n);
        double maxAbs = inv.Max(Math.Abs);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                if (j < i) Assert.Equal(0, u[i * n + j]);
                double s = 0;
                for (int k = 0; k < n; k++) s += u[k * n + i] * u[k * n + j]; // (U^T U)_ij
                Assert.True(Math.Abs(s - inv[i * n + j]) < 1e-8 * maxAbs, $"({i},{j}): {s} vs {inv[i * n + j]}");
            }
        for (int i = 0; i < n; i++) Assert.True(u[i * n + i] > 0);
    }

    [Fact]
    public void Not_positive_definite_is_a_clear_error()
    {
        var a = new double[] { 1, 2, 2, 1 };
        var e = Assert.Throws<PareException>(() => Linalg.CholeskyInPlace(a, 2));
        Assert.Contains("positive definite", e.Message);
    }
}
