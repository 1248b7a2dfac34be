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

    static double[] PackLower(double[] full, int n)
    {
        var p = new double[Linalg.PackedLength(n)];
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) p[Linalg.LowerIndex(i, j)] = full[i * n + j];
        return p;
    }

    static double[] PackUpper(double[] full, int n)
    {
        var p = new double[Linalg.PackedLength(n)];
        for (int i = 0; i < n; i++)
            for (int j = i; j < n; j++) p[Linalg.UpperIndex(n, i, j)] = full[i * n + j];
        return p;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(150)] // crosses the 64-column panels and the 16-column inverse panels
    public void Cholesky_reconstructs_the_matrix(int n)
    {
        var h = RandomSpd(n, n);
        var l = PackLower(h, n);
        Linalg.CholeskyInPlace(l, n);
        double L(int i, int j) => j <= i ? l[Linalg.LowerIndex(i, j)] : 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int k = 0; k < n; k++) s += L(i, k) * L(j, k);
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
        var packed = PackUpper(h, n);
        Linalg.UpperCholeskyOfInverse(packed, n);
        double U(int i, int j) => j >= i ? packed[Linalg.UpperIndex(n, i, j)] : 0;
        double maxAbs = inv.Max(Math.Abs);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int k = 0; k < n; k++) s += U(k, i) * U(k, j); // (U^T U)_ij
                Assert.True(Math.Abs(s - inv[i * n + j]) < 1e-8 * maxAbs, $"({i},{j}): {s} vs {inv[i * n + j]}");
            }
        for (int i = 0; i < n; i++) Assert.True(U(i, i) > 0);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(200, 1)] // 13 panels of 16 in groups of 4: written back over L group by group
    [InlineData(200, 3)] // groups of 12
    public void Triangular_inverse_in_place_times_L_is_the_identity(int n, int threads)
    {
        var l = PackLower(RandomSpd(n, 7 * n + threads), n);
        Linalg.CholeskyInPlace(l, n);
        var x = (double[])l.Clone();
        Linalg.InvertLowerInPlace(x, n, threads);
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++)
            {
                double s = 0;
                for (int k = j; k <= i; k++) s += l[Linalg.LowerIndex(i, k)] * x[Linalg.LowerIndex(k, j)];
                Assert.True(Math.Abs(s - (i == j ? 1 : 0)) < 1e-9, $"(L X)[{i},{j}] = {s}");
            }
    }

    [Fact]
    public void Not_positive_definite_is_a_clear_error()
    {
        var a = new double[] { 1, 2, 1 }; // packed lower of [[1, 2], [2, 1]]
        var e = Assert.Throws<PareException>(() => Linalg.CholeskyInPlace(a, 2));
        Assert.Contains("positive definite", e.Message);
    }
}
