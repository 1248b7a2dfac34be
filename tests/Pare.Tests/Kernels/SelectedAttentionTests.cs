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

    [Theory]
    [InlineData(64, 32, 8, true)]    // 852M shape, one selection per K/V group: 4 heads per unit
    [InlineData(64, 32, 8, false)]   // a selection per query head
    [InlineData(32, 8, 4, true)]     // pare-ref shape
    [InlineData(64, 12, 2, true)]    // groups of 6: units of 4 + 2
    [InlineData(64, 4, 4, false)]    // no grouping
    public void All_heads_at_once_match_one_head_at_a_time(int hd, int heads, int kvHeads, bool perGroup)
    {
        int positions = 700, capacity = 713, kvd = kvHeads * hd, group = heads / kvHeads;
        var kBlocks = new float[BlockedAttention.CacheFloats(capacity, kvHeads, hd)];
        BlockedAttention.WriteK(Random(positions * kvd, seed: 1), positions, kvHeads, hd, kBlocks, capacity, 0);
        var v = Random(capacity * kvd, seed: 3);
        var q = Random(heads * hd, seed: 4, scale: 3f);
        var rng = new Random(heads);
        var prefix = new int[heads][];
        var counts = new int[heads];
        for (int h = 0; h < heads; h++)
        {
            prefix[h] = perGroup && h % group != 0 ? prefix[h - 1]
                : [.. Enumerable.Range(0, positions - 4).Where(_ => rng.Next(4) == 0), 9999];   // a padding entry past the count
            counts[h] = prefix[h].Length - 1;
        }
        int[] own = [positions - 1, positions - 3];
        foreach (int threads in new[] { 1, 2 })
        {
            var all = new float[heads * hd];
            SelectedAttention.AttendHeads(q, heads, kvHeads, hd, kBlocks, capacity, v, prefix, counts, own, all, threads);
            for (int h = 0; h < heads; h++)
            {
                var one = new float[hd];
                SelectedAttention.AttendReference(q.AsSpan(h * hd, hd), kBlocks, capacity, v, kvHeads, hd, h / group, prefix[h].AsSpan(0, counts[h]), own, new float[counts[h] + 2], one);
                double e = Nmse(all.AsSpan(h * hd, hd), one);
                Assert.True(e < 1e-10, $"threads {threads}, head {h}: nmse {e}");
            }
        }
    }

    [Theory]
    [InlineData(64, 32, 8, 0, 700)]
    [InlineData(64, 12, 2, 37, 300)]   // groups of 6: units split at group edges
    [InlineData(64, 6, 6, 5, 21)]
    [InlineData(24, 4, 2, 3, 40)]      // the scalar path
    public void Logits_match_one_dot_product_at_a_time(int hd, int heads, int kvHeads, int from, int to)
    {
        int capacity = to + 9, kvd = kvHeads * hd, group = heads / kvHeads, n = to - from;
        var k = Random(to * kvd, seed: 5);
        var kBlocks = new float[BlockedAttention.CacheFloats(capacity, kvHeads, hd)];
        BlockedAttention.WriteK(k, to, kvHeads, hd, kBlocks, capacity, 0);
        var q = Random(heads * hd, seed: 6);
        foreach (int threads in new[] { 1, 2 })
        {
            var logits = new float[heads * n];
            SelectedAttention.Logits(q, heads, kvHeads, hd, kBlocks, capacity, from, to, logits, threads);
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < n; i++)
                {
                    double dot = 0;
                    for (int d = 0; d < hd; d++) dot += q[h * hd + d] * k[(from + i) * kvd + h / group * hd + d];
                    dot /= Math.Sqrt(hd);
                    Assert.True(Math.Abs(logits[h * n + i] - dot) < 1e-4 * (1 + Math.Abs(dot)), $"head {h}, position {from + i}: {logits[h * n + i]} vs {dot}");
                }
        }
    }

    [Fact]
    public void Weights_are_the_softmax_of_the_scaled_scores()
    {
        int hd = 64, kvHeads = 2, positions = 300, capacity = 310;
        var k = Random(positions * kvHeads * hd, seed: 7);
        var kBlocks = new float[BlockedAttention.CacheFloats(capacity, kvHeads, hd)];
        BlockedAttention.WriteK(k, positions, kvHeads, hd, kBlocks, capacity, 0);
        var q = Random(hd, seed: 8, scale: 2f);
        int[] pos = [.. Enumerable.Range(0, positions).Where(p => p % 7 == 0 || p % 16 < 3), 299, 1];
        var w = new float[pos.Length];
        SelectedAttention.Weights(q, kBlocks, capacity, kvHeads, hd, 1, pos, w);
        var s = pos.Select(p => Enumerable.Range(0, hd).Sum(d => (double)q[d] * k[(p * kvHeads + 1) * hd + d]) / Math.Sqrt(hd)).ToArray();
        double max = s.Max(), z = s.Sum(x => Math.Exp(x - max));
        for (int i = 0; i < pos.Length; i++) Assert.True(Math.Abs(w[i] - Math.Exp(s[i] - max) / z) < 1e-6, $"position {pos[i]}: {w[i]}");
    }
}
