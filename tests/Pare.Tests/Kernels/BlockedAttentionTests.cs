using Pare.Kernels;
using static Pare.Tests.Kernels.KernelTestUtil;

namespace Pare.Tests.Kernels;

/// <summary>Attention over the blocked, transposed K cache (<see cref="BlockedAttention"/>) against the double-precision reference.</summary>
public class BlockedAttentionTests
{
    [Theory]
    [InlineData(32, 8, 4, 1, 200, false)]  // pare-ref decode: 13 blocks, a tail of 9 positions
    [InlineData(32, 8, 4, 8, 200, true)]   // pare-ref token tree: 16 queries per K/V head, two tiles
    [InlineData(32, 8, 4, 16, 13, false)]  // a chain after a short cache
    [InlineData(16, 4, 4, 5, 40, true)]    // one query per K/V head (no grouping), 16 lanes: the unpaired chunk
    [InlineData(48, 6, 2, 3, 33, true)]    // three 16-lane chunks: a pair and an unpaired one
    [InlineData(64, 8, 2, 7, 0, false)]    // prefill from an empty cache, groups of 4
    [InlineData(128, 4, 1, 2, 17, true)]   // all heads on one K/V head
    [InlineData(24, 4, 2, 4, 30, true)]    // head size not a multiple of 16: the portable path only
    [InlineData(32, 8, 4, 37, 100, true)]  // a tree wider than one tile per head, odd tile remainder
    public void Fast_and_portable_paths_match_reference(int hd, int heads, int kvHeads, int n, int pos0, bool tree)
    {
        int kvd = kvHeads * hd, capacity = pos0 + n + 21; // capacity not a multiple of 16: blocks padded
        var q = Random(n * heads * hd, seed: 4);
        var k = Random((pos0 + n) * kvd, seed: 5);
        var v = Random((pos0 + n) * kvd, seed: 6);
        var rng = new Random(n);
        int[]? parents = tree ? [.. Enumerable.Range(0, n).Select(i => i == 0 ? -1 : rng.Next(i))] : null;
        var expected = AttentionTests.Reference(q, n, heads, kvHeads, hd, k, v, pos0, parents);

        // Stale values past the written positions must not leak into the result.
        var kBlocks = Random((int)BlockedAttention.CacheFloats(capacity, kvHeads, hd), seed: 7, scale: 50f);
        BlockedAttention.WriteK(k, pos0 + n, kvHeads, hd, kBlocks, capacity, 0);
        var vCache = new float[capacity * kvd];
        v.CopyTo(vCache, 0);
        foreach (bool portable in new[] { false, true })
            foreach (int threads in new[] { 1, 2 })
            {
                var y = new float[n * heads * hd];
                BlockedAttention.CausalGqa(q, n, heads, kvHeads, hd, kBlocks, capacity, vCache, pos0, y, threads, parents, portable);
                double e = Nmse(y, expected);
                Assert.True(e < 1e-10, $"portable {portable}, threads {threads}: nmse {e}");
            }
    }

    [Theory]
    [InlineData(32, 8, 4, 20, 200, 7)]   // pare-ref shapes: a tree's last 13 nodes after its first 7
    [InlineData(32, 8, 4, 40, 13, 1)]    // everything but the root, more than one tile
    [InlineData(24, 4, 2, 9, 30, 4)]     // head size not a multiple of 16: the portable path only
    public void A_tree_offset_evaluates_the_later_nodes_as_the_whole_tree_would(int hd, int heads, int kvHeads, int n, int pos0, int offset)
    {
        int kvd = kvHeads * hd, qd = heads * hd, capacity = pos0 + n + 5;
        var q = Random(n * qd, seed: 14);
        var k = Random((pos0 + n) * kvd, seed: 15);
        var v = Random((pos0 + n) * kvd, seed: 16);
        var rng = new Random(n + offset);
        int[] parents = [.. Enumerable.Range(0, n).Select(i => i == 0 ? -1 : rng.Next(i))];
        var expected = AttentionTests.Reference(q, n, heads, kvHeads, hd, k, v, pos0, parents).AsSpan(offset * qd).ToArray();
        var kBlocks = Random((int)BlockedAttention.CacheFloats(capacity, kvHeads, hd), seed: 17, scale: 50f);
        BlockedAttention.WriteK(k, pos0 + n, kvHeads, hd, kBlocks, capacity, 0);
        var vCache = new float[capacity * kvd];
        v.CopyTo(vCache, 0);
        foreach (bool portable in new[] { false, true })
        {
            var y = new float[(n - offset) * qd];
            BlockedAttention.CausalGqa(q.AsSpan(offset * qd), n - offset, heads, kvHeads, hd, kBlocks, capacity, vCache, pos0, y, 2, parents, portable, treeOffset: offset);
            double e = Nmse(y, expected);
            Assert.True(e < 1e-10, $"portable {portable}: nmse {e}");
        }
        Assert.Throws<ArgumentException>(() => BlockedAttention.CausalGqa(q, n - offset, heads, kvHeads, hd, kBlocks, capacity, vCache, pos0, new float[n * qd], 1, parents[..(n - 1)], treeOffset: offset));
    }

    [Fact]
    public void WriteK_and_MoveK_keep_every_value_at_its_position()
    {
        const int kvHeads = 3, hd = 20, capacity = 50;
        var k = Random(capacity * kvHeads * hd, seed: 1);
        var blocks = new float[BlockedAttention.CacheFloats(capacity, kvHeads, hd)];
        // Written in two batches, as prefill and then decode do.
        BlockedAttention.WriteK(k.AsSpan(0, 30 * kvHeads * hd), 30, kvHeads, hd, blocks, capacity, 0);
        BlockedAttention.WriteK(k.AsSpan(30 * kvHeads * hd), capacity - 30, kvHeads, hd, blocks, capacity, 30);
        BlockedAttention.MoveK(blocks, capacity, kvHeads, hd, from: 47, to: 33);
        // Read back through attention with one-hot queries would be indirect; the layout is documented, so check it.
        int blocksPerHead = (capacity + 15) / 16;
        for (int p = 0; p < capacity; p++)
            for (int h = 0; h < kvHeads; h++)
                for (int d = 0; d < hd; d++)
                {
                    int src = p == 33 ? 47 : p;
                    float stored = blocks[((h * blocksPerHead + p / 16) * hd + d) * 16 + p % 16];
                    Assert.Equal(k[(src * kvHeads + h) * hd + d], stored);
                }
        Assert.Throws<ArgumentOutOfRangeException>(() => BlockedAttention.WriteK(k.AsSpan(0, 2 * kvHeads * hd), 2, kvHeads, hd, blocks, capacity, capacity - 1));
    }
}
