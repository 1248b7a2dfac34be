using LLama.Native;
using Pare.Kernels;
using Pare.Models;
using Pare.Speculative;
using Pare.Tensors;
using Pare.Tests.TestSupport;
using Xunit.Abstractions;

namespace Pare.Tests.Models;

/// <summary>
/// KV cache value types: the fast encode/decode paths against the scalar definition, the session's logits against the
/// F32 cache and against llama.cpp run with the same cache types, and tree verification on compressed caches.
/// </summary>
public class KvCacheTypeTests(ITestOutputHelper output)
{
    // Head width 32 (q8_0 groups of 32 along a head), grouped-query attention.
    static readonly LlamaConfig Cfg = TestModels.Cfg(dim: 128, layers: 3, heads: 4, kvHeads: 2, ffn: 256, tied: true);
    static string Model() => TestModels.Get("kv-gqa", Cfg, GgmlType.F32);

    static float[] RandomRows(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 2 - 1) * (i % 7 == 0 ? 40 : 1.5f);
        // Halves' edge cases: subnormals, an exact zero group, values that round to infinity in F16.
        x[3] = 3e-6f; x[5] = -1e-7f;
        for (int i = 64; i < 96 && i < n; i++) x[i] = 0;
        return x;
    }

    [Theory]
    [InlineData(KvValueType.F16)]
    [InlineData(KvValueType.Q8_0)]
    public void Blocked_K_and_V_rows_read_back_as_the_scalar_definition_says(KvValueType type)
    {
        const int kvHeads = 2, hd = 64, capacity = 40, n = 37, pos0 = 2;
        int kvd = kvHeads * hd;
        var k = RandomRows(n * kvd, 1);
        var v = RandomRows(n * kvd, 2);
        var kOut = new float[BlockedAttention.CacheFloats(capacity, kvHeads, hd)];
        var vOut = new float[(pos0 + n) * kvd];
        if (type == KvValueType.F16)
        {
            var kh = new ushort[kOut.Length];
            KvQuant.WriteKF16(k, n, kvHeads, hd, kh, capacity, pos0);
            KvQuant.ReadKF16(kh, kvHeads, hd, capacity, pos0 + n, kOut);
            var vh = new ushort[vOut.Length];
            KvQuant.WriteF16(v, vh.AsSpan(pos0 * kvd));
            KvQuant.HalfToFloat(vh, vOut);
        }
        else
        {
            var kq = new sbyte[kOut.Length];
            var ks = new float[KvQuant.KScaleCount(capacity, kvHeads, hd)];
            KvQuant.WriteKQ8(k, n, kvHeads, hd, kq, ks, capacity, pos0);
            KvQuant.ReadKQ8(kq, ks, kvHeads, hd, capacity, pos0 + n, kOut);
            var vq = new byte[(pos0 + n) * KvQuant.Q8RowBytes(kvd)];
            KvQuant.WriteQ8(v, vq.AsSpan(pos0 * KvQuant.Q8RowBytes(kvd)));
            KvQuant.ReadQ8(vq, vOut);
        }
        // Expected: each row through the scalar definition; K put in the blocked layout by the F32 writer.
        var kRef = new float[k.Length];
        var vRef = new float[v.Length];
        for (int r = 0; r < n * kvHeads; r++)
        {
            KvQuant.RoundTripReference(type, k.AsSpan(r * hd, hd), kRef.AsSpan(r * hd, hd));
            KvQuant.RoundTripReference(type, v.AsSpan(r * hd, hd), vRef.AsSpan(r * hd, hd));
        }
        var kExpected = new float[kOut.Length];
        BlockedAttention.WriteK(kRef, n, kvHeads, hd, kExpected, capacity, pos0);
        for (int h = 0; h < kvHeads; h++)
            for (int p = pos0; p < pos0 + n; p++)
                for (int d = 0; d < hd; d++)
                {
                    long at = ((long)h * ((capacity + 15) / 16) + p / 16) * hd * 16 + d * 16 + p % 16;
                    Assert.Equal(kExpected[at], kOut[at]);
                }
        Assert.Equal(vRef, vOut.AsSpan(pos0 * kvd).ToArray());
    }

    static double RelDiff(float[] expected, ReadOnlySpan<float> actual)
    {
        double maxAbs = expected.Max(Math.Abs), maxDiff = 0;
        for (int i = 0; i < expected.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(expected[i] - actual[i]));
        return maxDiff / maxAbs;
    }

    [Theory]
    [InlineData(KvValueType.F16, 2e-3)]
    [InlineData(KvValueType.Q8_0, 2e-2)]
    public void Logits_stay_close_to_the_F32_cache_and_the_cache_shrinks(KvValueType type, double tol)
    {
        using var m = LlamaModel.Load(Model());
        var rng = new Random(11);
        int[] seq = [.. Enumerable.Range(0, 90).Select(_ => rng.Next(m.Config.VocabSize))];
        var f32 = m.CreateSession(new SessionOptions { ContextLength = 128, Threads = 2 });
        var s = m.CreateSession(new SessionOptions { ContextLength = 128, Threads = 2, KvType = type });
        var expected = f32.ForwardAll(seq.AsSpan(0, 60));
        var actual = s.ForwardAll(seq.AsSpan(0, 60));
        int v = m.Config.VocabSize;
        double worst = 0;
        for (int p = 0; p < 60; p++) worst = Math.Max(worst, RelDiff(expected.AsSpan(p * v, v).ToArray(), actual.AsSpan(p * v, v)));
        // Decode steps read what prefill stored.
        for (int t = 60; t < 90; t++) worst = Math.Max(worst, RelDiff(f32.Forward([seq[t]]), s.Forward([seq[t]])));
        output.WriteLine($"{type}: worst max|diff| / max|logit| vs F32 cache = {worst:E2}");
        Assert.True(worst <= tol, $"{worst:E2}");
        Assert.True(worst > 0, "the cache type made no difference: is it really used?");
        double ratio = s.Cache.BytesPerToken / f32.Cache.BytesPerToken;
        Assert.Equal(type == KvValueType.F16 ? 0.5 : 1.09375 / 4, ratio, 6);
    }

    [Theory]
    [InlineData(KvValueType.F16)]
    [InlineData(KvValueType.Q8_0)]
    public void Tree_verification_on_a_compressed_cache_leaves_it_as_plain_decoding_would(KvValueType type)
    {
        using var m = LlamaModel.Load(Model());
        int v = m.Config.VocabSize;
        var rng = new Random(4);
        int[] prefix = [.. Enumerable.Range(0, 21).Select(_ => rng.Next(v))];
        var opts = new SessionOptions { ContextLength = 96, Threads = 2, KvType = type };
        var s = m.CreateSession(opts);
        s.Forward(prefix);
        var tree = new DraftTree(rng.Next(v));
        while (tree.Count < 30) tree.Add(rng.Next(v), rng.Next(tree.Count));
        s.ForwardTree(tree);
        int deepest = Enumerable.Range(0, tree.Count).MaxBy(i => tree.Depths[i]);
        var path = new List<int>();
        for (int n = deepest; n >= 0; n = tree.Parents[n]) path.Insert(0, n);
        s.CommitTree(path);
        int probe = rng.Next(v);
        var after = s.Forward([probe]);
        // Plain decoding stores the same rows at the same positions: the results agree to float rounding.
        var plain = m.CreateSession(opts);
        plain.Forward(prefix);
        var expected = plain.Forward([.. path.Select(n => tree.Tokens[n]), probe]);
        Assert.True(RelDiff(expected, after) <= 1e-5, $"{RelDiff(expected, after):E2}");
    }

    [Theory]
    [InlineData(KvValueType.F16, GGMLType.GGML_TYPE_F16, 5e-4)]
    [InlineData(KvValueType.Q8_0, GGMLType.GGML_TYPE_Q8_0, 2e-2)]
    public void Logits_match_llama_cpp_with_the_same_cache_type(KvValueType type, GGMLType ggml, double tol)
    {
        string path = Model();
        // llama.cpp stores a quantized V cache only with flash attention; its flash-attention kernel also rounds Q to the
        // K type and accumulates V in F16, which Pare does not (it decodes the cache to F32): hence the looser bounds.
        using var oracle = new LlamaCppOracle(path, typeK: ggml, typeV: ggml, flashAttention: true);
        using var m = LlamaModel.Load(path);
        var rng = new Random(5);
        int[] seq = [.. Enumerable.Range(0, 64).Select(_ => rng.Next(m.Config.VocabSize))];
        var expected = oracle.Logits(seq);
        var s = m.CreateSession(new SessionOptions { ContextLength = 256, Threads = 2, KvType = type });
        var actual = s.ForwardAll(seq);
        int v = m.Config.VocabSize;
        double worst = 0;
        for (int p = 0; p < seq.Length; p++) worst = Math.Max(worst, RelDiff(expected[p], actual.AsSpan(p * v, v)));
        output.WriteLine($"{type}: worst max|diff| / max|logit| vs llama.cpp ({ggml}, flash attention) = {worst:E2}");
        Assert.True(worst <= tol, $"{worst:E2}");
    }

    [Fact]
    public void Q8_0_needs_a_head_width_that_is_a_multiple_of_32()
    {
        var cfg = TestModels.OracleShapes[0].Config; // head width 16
        using var m = LlamaModel.Load(TestModels.Get("mha-untied", cfg, GgmlType.F32));
        var e = Assert.Throws<PareException>(() => m.CreateSession(new SessionOptions { KvType = KvValueType.Q8_0 }));
        Assert.Contains("multiple of 32", e.Message);
    }
}
