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

    /// <summary>Items per partial sum of <see cref="Sum"/>: fixed, so the result does not depend on the thread count either.</summary>
    const int SumChunk = 1 << 14;

    /// <summary>Σ f(i) in double: partial sums over fixed chunks of <see cref="SumChunk"/> items, added in chunk order (reproducible
    /// for any thread count).</summary>
    public static double Sum(int count, int threads, Func<int, double> f)
    {
        int chunks = (count + SumChunk - 1) / SumChunk;
        var partial = new double[chunks];
        For(chunks, threads, (c0, c1) =>
        {
            for (int c = c0; c < c1; c++)
            {
                double s = 0;
                for (int k = c * SumChunk, end = Math.Min(count, (c + 1) * SumChunk); k < end; k++) s += f(k);
                partial[c] = s;
            }
        });
        double total = 0;
        foreach (double p in partial) total += p;
        return total;
    }
}
