using System.Runtime.Intrinsics.X86;
using Pare.Kernels;
using static Pare.Tests.Kernels.KernelTestUtil;

namespace Pare.Tests.Kernels;

/// <summary><see cref="KeySketch"/>'s vector paths against their scalar references, and the sketch's scores against the exact ones.</summary>
public class KeySketchTests
{
    static (float[] K, float[] Blocks) Cache(int positions, int capacity, int kvHeads, int hd, int seed)
    {
        var k = Random(positions * kvHeads * hd, seed, scale: 2f);
        var blocks = new float[BlockedAttention.CacheFloats(capacity, kvHeads, hd)];
        BlockedAttention.WriteK(k, positions, kvHeads, hd, blocks, capacity, 0);
        return (k, blocks);
    }

    [Theory]
    [InlineData(64, 2, 300, 0, 300, 8)]
    [InlineData(64, 8, 100, 37, 91, 8)]   // partial blocks at both ends
    [InlineData(32, 3, 40, 16, 17, 8)]
    [InlineData(64, 2, 300, 0, 300, 4)]
    [InlineData(32, 3, 100, 37, 91, 4)]
    public void Quantize_matches_its_reference_bitwise(int hd, int kvHeads, int positions, int from, int to, int bits)
    {
        int capacity = positions + 5;
        var (_, blocks) = Cache(positions, capacity, kvHeads, hd, seed: 1);
        var sketch = new sbyte[KeySketch.SketchBytes(capacity, kvHeads, hd, bits)];
        var scales = new float[KeySketch.ScaleCount(capacity, kvHeads)];
        var sketchRef = new sbyte[sketch.Length];
        var scalesRef = new float[scales.Length];
        KeySketch.Quantize(blocks, capacity, kvHeads, hd, from, to, sketch, scales, bits);
        KeySketch.QuantizeReference(blocks, capacity, kvHeads, hd, from, to, sketchRef, scalesRef, bits);
        Assert.Equal(sketchRef, sketch);
        Assert.Equal(scalesRef, scales);
        // Every value within half a step of its scale.
        for (int h = 0; h < kvHeads; h++)
            for (int p = from; p < to; p++)
                for (int d = 0; d < hd; d++)
                {
                    long at = BlockedAttention.Index(capacity, hd, h, p, d);
                    float s = scales[h * ((capacity + 15) / 16 * 16) + p];
                    Assert.True(Math.Abs(KeySketch.Value(sketch, bits, capacity, hd, h, p, d) * s - blocks[at]) <= 0.5001f * s, $"head {h}, position {p}, d {d}");
                }
        Assert.Throws<ArgumentOutOfRangeException>(() => KeySketch.Quantize(blocks, capacity, kvHeads, hd, 0, capacity + 1, sketch, scales, bits));
    }

    [Theory]
    [InlineData(64, 32, 8, 0, 700, 8)]    // 852M shape
    [InlineData(64, 12, 2, 37, 300, 8)]   // groups of 6: units split at group edges
    [InlineData(64, 6, 6, 5, 21, 8)]
    [InlineData(24, 4, 2, 3, 40, 8)]      // head width 24
    [InlineData(32, 7, 7, 0, 33, 8)]      // single heads (groups of 1), pare-long's head width
    [InlineData(64, 8, 8, 3, 150, 8)]     // groups of 1 over 10 blocks: four at a time, then two
    [InlineData(64, 32, 8, 0, 700, 4)]
    [InlineData(32, 12, 2, 37, 300, 4)]
    [InlineData(64, 8, 8, 3, 150, 4)]     // 4 bits, groups of 1
    public void Logits_match_the_reference_and_approximate_the_exact_scores(int hd, int heads, int kvHeads, int from, int to, int bits)
    {
        int capacity = to + 9, kvd = kvHeads * hd, group = heads / kvHeads, n = to - from;
        var (k, blocks) = Cache(to, capacity, kvHeads, hd, seed: 5);
        var sketch = new sbyte[KeySketch.SketchBytes(capacity, kvHeads, hd, bits)];
        var scales = new float[KeySketch.ScaleCount(capacity, kvHeads)];
        KeySketch.Quantize(blocks, capacity, kvHeads, hd, 0, to, sketch, scales, bits);
        var q = Random(heads * hd, seed: 6);
        var expected = new float[heads * n];
        KeySketch.LogitsReference(q, heads, kvHeads, hd, sketch, scales, capacity, from, to, expected, bits: bits);
        // Both 8-bit paths (AVX-VNNI where the CPU has it, and AVX-512BW's vpmaddwd), on one and two threads.
        foreach (bool vnni in AvxVnni.IsSupported ? new[] { true, false } : [false])
            foreach (int threads in new[] { 1, 2 })
            {
                var logits = new float[heads * n];
                KeySketch.Logits(q, heads, kvHeads, hd, sketch, scales, capacity, from, to, logits, threads, softmax: false, bits, vnni);
                for (int i = 0; i < logits.Length; i++)
                    Assert.Equal(expected[i], logits[i]);   // the same integer sums, the same float products
            }
        // With each row's softmax (TokenSelect's vote), against the reference's double softmax.
        var soft = new float[heads * n];
        var softRef = new float[heads * n];
        KeySketch.Logits(q, heads, kvHeads, hd, sketch, scales, capacity, from, to, soft, 2, softmax: true, bits: bits);
        KeySketch.LogitsReference(q, heads, kvHeads, hd, sketch, scales, capacity, from, to, softRef, softmax: true, bits: bits);
        Assert.True(Nmse(soft, softRef) < 1e-10, $"softmax nmse {Nmse(soft, softRef)}");
        // Unnormalized rows and each head's 1/Σ: row × scale is the softmax.
        var raw = new float[heads * n];
        var rowScales = new float[heads];
        KeySketch.Logits(q, heads, kvHeads, hd, sketch, scales, capacity, from, to, raw, 2, softmax: true, bits: bits, rowScales: rowScales);
        for (int i = 0; i < raw.Length; i++) raw[i] *= rowScales[i / n];
        Assert.True(Nmse(raw, softRef) < 1e-10, $"row-scaled softmax nmse {Nmse(raw, softRef)}");
        // Against the exact scores: the error is a small fraction of their spread.
        var exact = new float[heads * n];
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < n; i++)
                exact[h * n + i] = (float)(Enumerable.Range(0, hd).Sum(d => (double)q[h * hd + d] * k[(from + i) * kvd + h / group * hd + d]) / Math.Sqrt(hd));
        Assert.True(Nmse(expected, exact) < (bits == 8 ? 1e-3 : 0.1), $"nmse {Nmse(expected, exact)}");
    }

    [Theory]
    [InlineData(64, 32, 8, 0, 700, 8)]    // 852M shape: fused
    [InlineData(64, 32, 8, 37, 651, 4)]   // fused, 4 bits, partial blocks at both ends
    [InlineData(32, 16, 2, 5, 300, 8)]    // groups of 8: two fused units per group
    [InlineData(64, 12, 2, 37, 300, 8)]   // groups of 6: scores, then SoftVotes
    [InlineData(32, 7, 7, 0, 33, 4)]      // groups of 1
    public void Votes_match_the_reference_on_both_paths(int hd, int heads, int kvHeads, int from, int to, int bits)
    {
        int capacity = to + 9, n = to - from;
        var (_, blocks) = Cache(to, capacity, kvHeads, hd, seed: 7);
        var sketch = new sbyte[KeySketch.SketchBytes(capacity, kvHeads, hd, bits)];
        var scales = new float[KeySketch.ScaleCount(capacity, kvHeads)];
        KeySketch.Quantize(blocks, capacity, kvHeads, hd, 0, to, sketch, scales, bits);
        var q = Random(heads * hd, seed: 8, scale: 3f);   // peaked softmaxes
        AssertVotes(q, heads, kvHeads, hd, sketch, scales, capacity, from, to, bits, n);
    }

    [Fact]
    public void Fused_votes_raise_their_shift_when_the_scores_climb()
    {
        // Keys growing along the positions, queries along them: scores climb by far more than the running shift's slack
        // (64 in log2 units) across the range, so each head's shift is raised (and its row rescaled) several times.
        int hd = 64, heads = 8, kvHeads = 2, to = 900, capacity = to + 7, kvd = kvHeads * hd;
        var k = Random(to * kvd, seed: 9, scale: 0.1f);
        for (int p = 0; p < to; p++)
            for (int x = 0; x < kvd; x++) k[p * kvd + x] += 0.04f * p;   // ~0.23 per position in log2 units: ~200 over the range
        var blocks = new float[BlockedAttention.CacheFloats(capacity, kvHeads, hd)];
        BlockedAttention.WriteK(k, to, kvHeads, hd, blocks, capacity, 0);
        var sketch = new sbyte[KeySketch.SketchBytes(capacity, kvHeads, hd, 8)];
        var scales = new float[KeySketch.ScaleCount(capacity, kvHeads)];
        KeySketch.Quantize(blocks, capacity, kvHeads, hd, 0, to, sketch, scales);
        var q = Random(heads * hd, seed: 10, scale: 0.1f);
        for (int i = 0; i < q.Length; i++) q[i] += 0.5f;
        AssertVotes(q, heads, kvHeads, hd, sketch, scales, capacity, 3, to, 8, to - 3);
    }

    static void AssertVotes(float[] q, int heads, int kvHeads, int hd, sbyte[] sketch, float[] scales, int capacity, int from, int to, int bits, int n)
    {
        var expected = new float[n];
        KeySketch.VotesReference(q, heads, kvHeads, hd, sketch, scales, capacity, from, to, expected, bits);
        foreach (bool fused in new[] { true, false })
            foreach (int threads in new[] { 1, 2 })
            {
                var votes = new float[n];
                var rows = new float[heads * n];
                KeySketch.Votes(q, heads, kvHeads, hd, sketch, scales, capacity, from, to, rows, votes, threads, bits, fused);
                // The exponentials' polynomial (relative error ≤ 2.4e-6) and float sums: each vote within 2e-5 relative.
                for (int i = 0; i < n; i++)
                    Assert.True(Math.Abs(votes[i] - expected[i]) <= 2e-5f * expected[i] + 1e-30f, $"fused {fused}, {threads} threads, position {i}: {votes[i]} vs {expected[i]}");
                Assert.Equal(heads, votes.Sum(), 3);
            }
    }

    [Fact]
    public void Read_k_inverts_write_k()
    {
        int hd = 32, kvHeads = 3, positions = 70, capacity = 75, kvd = kvHeads * hd;
        var (k, blocks) = Cache(positions, capacity, kvHeads, hd, seed: 9);
        var rows = new float[capacity * kvd];
        BlockedAttention.ReadK(blocks, capacity, kvHeads, hd, 5, positions, rows);
        Assert.Equal(k.AsSpan(5 * kvd).ToArray(), rows.AsSpan(5 * kvd, (positions - 5) * kvd).ToArray());
        Assert.All(rows.AsSpan(0, 5 * kvd).ToArray(), x => Assert.Equal(0f, x));
    }
}
