namespace Pare.Training;

/// <summary>
/// Parallel loops whose work split depends only on the item count and thread count: item range i of t threads is
/// always [count·i/t, count·(i+1)/t). Bodies write disjoint outputs, so results never depend on scheduling.
/// </summary>
internal static class FixedParallel
{
    public static void For(int count, int threads, Action<int, int> range)
    {
        threads = Math.Clamp(threads, 1, Math.Max(1, count));
        if (threads == 1) { range(0, count); return; }
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, i =>
            range((int)((long)count * i / threads), (int)((long)count * (i + 1) / threads)));
    }

    /// <summary>Σ f(i) in double: fixed per-range partial sums, added in range order (reproducible).</summary>
    public static double Sum(int count, int threads, Func<int, double> f)
    {
        threads = Math.Clamp(threads, 1, Math.Max(1, count));
        var partial = new double[threads];
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, i =>
        {
            int a = (int)((long)count * i / threads), b = (int)((long)count * (i + 1) / threads);
            double s = 0;
            for (int k = a; k < b; k++) s += f(k);
            partial[i] = s;
        });
        double total = 0;
        foreach (double p in partial) total += p;
        return total;
    }
}
