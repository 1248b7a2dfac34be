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

    /// <summary>
    /// The whole training model's gradient against finite differences on a batch of 2 x 6 random tokens (vocabulary 40),
    /// every tensor, norm weights moved away from 1 first so their gradients are not special.
    /// </summary>
    public static void WholeModel(Pare.Training.ParameterStore p)
    {
        foreach (var info in p.All.Where(i => !i.Decay)) Random(info.Cols, info.Name.Length).Select(v => 1 + 0.3f * v).ToArray().CopyTo(p.Value(info));
        var model = new Pare.Training.TrainingModel(p, 2, 6, 2);
        var r = new System.Random(3);
        int[] inputs = [.. Enumerable.Range(0, 12).Select(_ => r.Next(40))];
        int[] targets = [.. Enumerable.Range(0, 12).Select(_ => r.Next(40))];
        p.ZeroGrads();
        model.Step(inputs, targets, 1f / 12);
        var grads = (float[])p.Grads.Clone();
        double Loss() => model.Step(inputs, targets, 0f) / 12;
        foreach (var info in p.All)
            Check(info.Name, p.Values, grads.AsSpan((int)info.Offset, (int)info.Length), Loss, eps: 1e-2f, absTol: 1e-3, relTol: 3e-2,
                maxChecks: 12, offset: (int)info.Offset, length: (int)info.Length);
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
