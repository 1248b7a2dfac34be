namespace Pare.Tests.Training;

/// <summary>Central finite differences against an analytic gradient.</summary>
internal static class GradCheck
{
    /// <summary>
    /// For each checked index i: numeric = (L(x + eps e_i) − L(x − eps e_i)) / 2 eps, compared with analytic[i] within
    /// absTol + relTol · |analytic[i]|. Checks all indices when there are at most <paramref name="maxChecks"/>, else a seeded sample.
    /// </summary>
    public static void Check(string what, float[] x, ReadOnlySpan<float> analytic, Func<double> loss, float eps = 1e-2f,
        double absTol = 2e-3, double relTol = 2e-2, int maxChecks = 60, int offset = 0, int length = -1)
    {
        if (length < 0) length = x.Length - offset;
        var rng = new Random(12345);
        var idx = length <= maxChecks ? Enumerable.Range(offset, length) : Enumerable.Range(0, maxChecks).Select(_ => offset + rng.Next(length));
        double worst = 0;
        foreach (int i in idx)
        {
            float saved = x[i];
            x[i] = saved + eps; double lp = loss();
            x[i] = saved - eps; double lm = loss();
            x[i] = saved;
            double num = (lp - lm) / (2 * eps);
            double a = analytic[i - offset];
            double err = Math.Abs(num - a) - relTol * Math.Abs(a);
            worst = Math.Max(worst, err);
            Assert.True(err <= absTol, $"{what}[{i - offset}]: analytic {a:G6}, numeric {num:G6}");
        }
    }

    public static float[] Random(int n, int seed, float scale = 1f)
    {
        var r = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1) * scale)];
    }

    public static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += (double)a[i] * b[i];
        return s;
    }
}
