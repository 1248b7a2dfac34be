using Pare.Kernels;
using static Pare.Tests.Kernels.KernelTestUtil;

namespace Pare.Tests.Kernels;

/// <summary>The block-vector path of <see cref="SelectedAttention"/> against its scalar reference.</summary>
public class SelectedAttentionTests
{
    [Theory]
    [InlineData(64, 4, 300, "pages")]      // Quest-like: whole 16-position pages plus a window
    [InlineData(64, 2, 300, "scattered")]  // H2O/TokenSelect-like: lone positions, unsorted own chunk
    [InlineData(128, 2, 77, "scattered")]  // two passes over V (128 floats)
    [InlineData(32, 8, 40, "all")]         // every position, capacity not a multiple of 16
    [InlineData(16, 1, 19, "pages")]
    [InlineData(80, 2, 50, "scattered")]   // 5 vectors: a partial last pass over V
    public void Vector_path_matches_the_scalar_reference(int hd, int kvHeads, int positions, string pattern)
    {
        int capacity = positions + 13, kvd = kvHeads * hd;
        var k = Random(positions * kvd, seed: 1);
        var kBlocks = Random((int)BlockedAttention.CacheFloats(capacity, kvHeads, hd), seed: 2, scale: 50f);
        BlockedAttention.WriteK(k, positions, kvHeads, hd, kBlocks, capacity, 0);
        var v = Random(capacity * kvd, seed: 3);
        var q = Random(hd, seed: 4, scale: 3f);
        var rng = new Random(positions);
        int[] first = pattern switch
        {
            "pages" => [.. Enumerable.Range(0, positions / 16).Where(p => rng.Next(3) == 0).SelectMany(p => Enumerable.Range(p * 16, 16))],
            "scattered" => [.. Enumerable.Range(0, positions - 8).Where(_ => rng.Next(5) == 0)],
            _ => [.. Enumerable.Range(0, positions - 8)],
        };
        int[] second = [.. Enumerable.Range(positions - 8, 8).Reverse()];   // tree ancestors come leaf first
        for (int kvHead = 0; kvHead < kvHeads; kvHead++)
        {
            var expected = new float[hd];
            var actual = new float[hd];
            var scores = new float[first.Length + second.Length];
            SelectedAttention.AttendReference(q, kBlocks, capacity, v, kvHeads, hd, kvHead, first, second, scores, expected);
            SelectedAttention.Attend(q, kBlocks, capacity, v, kvHeads, hd, kvHead, first, second, scores, actual);
            double e = Nmse(actual, expected);
            Assert.True(e < 1e-10, $"{pattern}, head {kvHead}: nmse {e}");
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => SelectedAttention.Attend(q, kBlocks, capacity, v, kvHeads, hd, 0, [capacity], [], new float[1], new float[hd]));
    }

    [Theory]
    [InlineData(64)]
    [InlineData(128)]
    [InlineData(24)]   // not a multiple of 16: the reference path
    public void Bound_dot_matches_its_reference_and_bounds_every_key_inside(int hd)
    {
        var q = Random(hd, seed: 9);
        var a = Random(hd, seed: 10);
        var b = Random(hd, seed: 11);
        var min = a.Zip(b, Math.Min).ToArray();
        var max = a.Zip(b, Math.Max).ToArray();
        float fast = SelectedAttention.BoundDot(q, min, max), slow = SelectedAttention.BoundDotReference(q, min, max);
        Assert.True(Math.Abs(fast - slow) <= 1e-5f * (1 + Math.Abs(slow)), $"{fast} vs {slow}");
        var rng = new Random(hd);
        for (int t = 0; t < 50; t++)
        {
            var key = min.Zip(max, (lo, hi) => lo + (float)rng.NextDouble() * (hi - lo)).ToArray();
            Assert.True(q.Zip(key, (x, y) => x * y).Sum() <= fast + 1e-4f);
        }
    }
}
