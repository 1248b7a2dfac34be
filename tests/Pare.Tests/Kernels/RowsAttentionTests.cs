using Pare.Kernels;
using static Pare.Tests.Kernels.KernelTestUtil;

namespace Pare.Tests.Kernels;

/// <summary><see cref="RowsAttention"/> against the scalar reference, one head at a time.</summary>
public class RowsAttentionTests
{
    [Theory]
    [InlineData(64, 32, 8, 700, 2)]    // 852M shape: tiles of 128 positions, a partial last tile, a tree-like own list
    [InlineData(64, 12, 2, 300, 1)]    // groups of 6: 4 + 2 heads per K/V head
    [InlineData(128, 4, 4, 130, 0)]    // two passes over V per head, no own positions
    [InlineData(128, 16, 2, 400, 1)]   // groups of 8: two fours per K/V head through the branch-free kernels, head width 128
    [InlineData(32, 8, 4, 90, 3)]      // head width 32: the scalar path
    public void Shared_rows_match_the_reference_per_head(int hd, int heads, int kvHeads, int positions, int ownCount)
    {
        int capacity = positions + 13, kvd = kvHeads * hd, group = heads / kvHeads;
        var k = Random(positions * kvd, seed: 1);
        var kBlocks = new float[BlockedAttention.CacheFloats(capacity, kvHeads, hd)];
        BlockedAttention.WriteK(k, positions, kvHeads, hd, kBlocks, capacity, 0);
        var rows = new float[capacity * kvd];
        BlockedAttention.ReadK(kBlocks, capacity, kvHeads, hd, 0, positions - ownCount, rows);
        var ownOnly = new float[kBlocks.Length];   // the blocks need to hold only the own positions' keys
        int[] own = [.. Enumerable.Range(positions - ownCount, ownCount).Reverse()];   // leaf first, as tree ancestors
        foreach (int p in own) BlockedAttention.WriteK(k.AsSpan(p * kvd, kvd), 1, kvHeads, hd, ownOnly, capacity, p);
        var v = Random(capacity * kvd, seed: 3);
        var q = Random(heads * hd, seed: 4, scale: 3f);
        var rng = new Random(positions);
        int[] prefix = [.. Enumerable.Range(0, positions - ownCount).Where(_ => rng.Next(3) == 0)];
        foreach (int threads in new[] { 1, 2 })
        {
            var all = new float[heads * hd];
            RowsAttention.AttendShared(q, heads, kvHeads, hd, rows, ownOnly, capacity, v, prefix, own, all, threads);
            for (int h = 0; h < heads; h++)
            {
                var one = new float[hd];
                SelectedAttention.AttendReference(q.AsSpan(h * hd, hd), kBlocks, capacity, v, kvHeads, hd, h / group, prefix, own, new float[prefix.Length + own.Length], one);
                double e = Nmse(all.AsSpan(h * hd, hd), one);
                Assert.True(e < 1e-10, $"threads {threads}, head {h}: nmse {e}");
            }
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => RowsAttention.AttendShared(q, heads, kvHeads, hd, rows, ownOnly, capacity, v, [capacity], own, new float[heads * hd], 1));
    }
}
