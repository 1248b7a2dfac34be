using Pare.Kernels;
using Pare.Models;
using Pare.Models.Kv;
using Xunit.Abstractions;

namespace Pare.Tests.Kernels;

/// <summary>
/// The fused F16 / Q8_0 attention kernels (<see cref="BlockedAttention.CausalGqaF16"/>, <see cref="BlockedAttention.CausalGqaQ8"/>,
/// reached through <see cref="KvCache.Attend"/>) against their references: the cache decoded to F32 and run through the
/// F32 fast kernel (the same products in the same order: bit for bit) and through the portable kernel (float rounding of
/// a different summation order, outputs up to ~9).
/// </summary>
public class FusedKvAttentionTests(ITestOutputHelper output)
{
    static LlamaConfig Cfg(int heads, int kvHeads, int headDim) => new()
    {
        Dim = heads * headDim, Layers = 2, Heads = heads, KvHeads = kvHeads, HeadDim = headDim, RopeDim = headDim,
        FfnDim = 64, VocabSize = 64, ContextLength = 256, RopeBase = 10000f, RmsEps = 1e-5f,
    };

    static float[] Random(int n, Random rng, float scale) =>
        [.. Enumerable.Range(0, n).Select(i => (float)(rng.NextDouble() * 2 - 1) * scale * (i % 11 == 0 ? 6 : 1))];

    [Theory]
    [InlineData(KvValueType.F16, 8, 2, 64)]
    [InlineData(KvValueType.Q8_0, 8, 2, 64)]
    [InlineData(KvValueType.F16, 3, 1, 32)]
    [InlineData(KvValueType.Q8_0, 3, 1, 32)]
    [InlineData(KvValueType.F16, 4, 4, 96)]
    [InlineData(KvValueType.Q8_0, 4, 4, 96)]
    public void Fused_attention_matches_the_decoded_F32_cache(KvValueType type, int heads, int kvHeads, int hd)
    {
        var c = Cfg(heads, kvHeads, hd);
        const int capacity = 200;
        var cache = new KvCache(c, capacity, type);
        Assert.True(cache.Fused, "this machine cannot run the fused kernels (AVX-512 needed)");
        var rng = new Random(heads * 100 + hd);
        int kvd = kvHeads * hd, qd = heads * hd;
        // 131 cached positions: an odd count and a part block, both layers written.
        const int cached = 131;
        for (int l = 0; l < c.Layers; l++)
            cache.Write(l, Random(cached * kvd, rng, 2), Random(cached * kvd, rng, 1.5f), cached, 0);
        double worst = 0, worstPortable = 0;
        // A decode step, a chunk of 9 new tokens and a tree of 12 (each new token written first, as the session does).
        foreach (var (n, tree) in new[] { (1, false), (9, false), (12, true) })
        {
            int pos0 = cached + (n == 1 ? 0 : 20);
            int[] parents = tree ? [-1, 0, 0, 1, 2, 2, 3, 4, 4, 7, 0, 10] : [];
            for (int l = 0; l < c.Layers; l++)
            {
                cache.Write(l, Random(n * kvd, rng, 2), Random(n * kvd, rng, 1.5f), n, pos0);
                if (n > 1 && l == 0) for (int ll = 0; ll < c.Layers; ll++) cache.Write(ll, Random(20 * kvd, rng, 2), Random(20 * kvd, rng, 1.5f), 20, cached);
                var q = Random(n * qd, rng, 1);
                var fused = new float[n * qd];
                var decoded = new float[n * qd];
                var portable = new float[n * qd];
                cache.Attend(l, q, n, heads, pos0, fused, threads: 2, parents);
                cache.Attend(l, q, n, heads, pos0, decoded, threads: 2, parents, fused: false);
                var (k, v) = cache.Read(l, pos0 + n);
                BlockedAttention.CausalGqa(q, n, heads, kvHeads, hd, k.Span, capacity, v.Span, pos0, portable, 1, parents, portable: true);
                for (int i = 0; i < fused.Length; i++)
                {
                    Assert.True(float.IsFinite(fused[i]));
                    worst = Math.Max(worst, Math.Abs(fused[i] - decoded[i]));
                    worstPortable = Math.Max(worstPortable, Math.Abs(fused[i] - portable[i]));
                }
            }
        }
        output.WriteLine($"{type} heads {heads}/{kvHeads} hd {hd}: max |fused - decoded F32 fast| {worst:E2}, vs portable {worstPortable:E2}");
        Assert.True(worst == 0, $"fused vs decoded: {worst:E2} (the same products in the same order: expected bit for bit)");
        Assert.True(worstPortable <= 1e-4, $"fused vs portable: {worstPortable:E2}");
    }

    [Fact]
    public void The_fused_cache_holds_no_F32_scratch()
    {
        var c = Cfg(8, 2, 64);
        var f32 = new KvCache(c, 1024, KvValueType.F32);
        var f16 = new KvCache(c, 1024, KvValueType.F16);
        var q8 = new KvCache(c, 1024, KvValueType.Q8_0);
        Assert.Equal(f32.Bytes / 2, f16.Bytes);
        Assert.True(q8.Bytes < f32.Bytes * 0.3, $"{q8.Bytes} vs {f32.Bytes}");
    }
}
