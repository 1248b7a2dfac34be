using System.Diagnostics;
using Pare.Models;

namespace Pare.Speculative;

/// <summary>
/// T(n): the measured time of one forward pass over n tokens for this model on this machine. Speculation pays only
/// when the expected tokens per step outgrow T(n)/T(1); on a 2-core CPU T(n) rises quickly, so the tree size must
/// follow the measurement.
/// </summary>
public sealed class CostModel
{
    public static readonly int[] DefaultSizes = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64];

    readonly int[] _sizes;
    readonly double[] _seconds;

    public CostModel(int[] sizes, double[] seconds)
    {
        if (sizes.Length == 0 || sizes.Length != seconds.Length || sizes[0] != 1) throw new ArgumentException("sizes must start at 1 and match the timings");
        _sizes = sizes; _seconds = seconds;
    }

    public IReadOnlyList<int> Sizes => _sizes;
    public IReadOnlyList<double> Seconds => _seconds;
    public int MaxSize => _sizes[^1];

    /// <summary>Minimum warm-up time of <see cref="Measure"/>, in seconds.</summary>
    const double WarmupSeconds = 1.0;

    /// <summary>
    /// Times chain trees of each size on <paramref name="session"/> (its state is left unchanged): the lower quartile of
    /// <paramref name="repeats"/> interleaved rounds, then made non-decreasing in n (a larger tree never costs less; a
    /// size that measured above a larger one was disturbed, by the machine or a collection). <paramref name="clock"/>: seconds
    /// (null = the Stopwatch; bench-spec --clock cpu passes the process's CPU time, which a loaded machine distorts less).
    /// </summary>
    public static CostModel Measure(InferenceSession session, IEnumerable<int>? sizes = null, int repeats = 9, Func<double>? clock = null)
    {
        int room = session.ContextLength - session.Position;
        var ns = (sizes ?? DefaultSizes).Where(n => n <= room).ToArray();
        if (ns.Length == 0 || ns[0] != 1) throw new PareException("no room left in the context to measure forward-pass times");
        var rng = new Random(17);
        var trees = ns.Select(n => DraftTree.Chain([.. Enumerable.Range(0, n).Select(_ => rng.Next(session.Model.Config.VocabSize))])).ToArray();
        // One logits buffer for all passes: a fresh large array per pass would time the allocator and the collector too.
        var logits = new float[(long)ns[^1] * session.Model.Config.VocabSize];
        // Warm-up over every size for at least WarmupSeconds: the JIT recompiles hot kernels in the background a while after
        // their first calls, and a single pass would leave that inside the timings of the first sizes measured.
        var warm = Stopwatch.StartNew();
        do { foreach (var t in trees) session.ForwardTree(t, logits); } while (warm.Elapsed.TotalSeconds < WarmupSeconds);
        // Rounds interleave the sizes, so drift on a shared machine touches all of them alike; median per size.
        var times = new double[ns.Length][];
        for (int i = 0; i < ns.Length; i++) times[i] = new double[repeats];
        for (int r = 0; r < repeats; r++)
            for (int i = 0; i < ns.Length; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                double c0 = clock?.Invoke() ?? 0;
                session.ForwardTree(trees[i], logits);
                times[i][r] = clock != null ? clock() - c0 : Stopwatch.GetElapsedTime(t0).TotalSeconds;
            }
        var secs = times.Select(t => { Array.Sort(t); return t[t.Length / 4]; }).ToArray();
        for (int i = secs.Length - 2; i >= 0; i--) secs[i] = Math.Min(secs[i], secs[i + 1]);
        return new CostModel(ns, secs);
    }

    /// <summary>T(n) in seconds, interpolated linearly between measured sizes (extrapolated past the last).</summary>
    public double Time(int n)
    {
        if (n <= 1) return _seconds[0];
        for (int i = 1; i < _sizes.Length; i++)
            if (n <= _sizes[i])
                return _seconds[i - 1] + (_seconds[i] - _seconds[i - 1]) * (n - _sizes[i - 1]) / (_sizes[i] - _sizes[i - 1]);
        int last = _sizes.Length - 1;
        double slope = last > 0 ? (_seconds[last] - _seconds[last - 1]) / (_sizes[last] - _sizes[last - 1]) : _seconds[0];
        return _seconds[last] + slope * (n - _sizes[last]);
    }
}
