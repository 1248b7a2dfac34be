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

    /// <summary>Times chain trees of each size on <paramref name="session"/> (its state is left unchanged), median of <paramref name="repeats"/>.</summary>
    public static CostModel Measure(InferenceSession session, IEnumerable<int>? sizes = null, int repeats = 3)
    {
        int room = session.ContextLength - session.Position;
        var ns = (sizes ?? DefaultSizes).Where(n => n <= room).ToArray();
        if (ns.Length == 0 || ns[0] != 1) throw new PareException("no room left in the context to measure forward-pass times");
        var secs = new double[ns.Length];
        var rng = new Random(17);
        var times = new double[repeats];
        var trees = ns.Select(n => DraftTree.Chain([.. Enumerable.Range(0, n).Select(_ => rng.Next(session.Model.Config.VocabSize))])).ToArray();
        // Warm-up over every size: the JIT's first tiers and cold caches would otherwise inflate the small sizes.
        foreach (var t in trees) session.ForwardTree(t);
        for (int i = 0; i < ns.Length; i++)
        {
            var tree = trees[i];
            for (int r = 0; r < repeats; r++)
            {
                var sw = Stopwatch.StartNew();
                session.ForwardTree(tree);
                times[r] = sw.Elapsed.TotalSeconds;
            }
            Array.Sort(times);
            secs[i] = times[repeats / 2];
        }
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
