using Pare.Kernels;

namespace Pare.Tests.Encoders;

/// <summary>The encoder's fast kernels (<see cref="F32Gemm"/>, <see cref="EncoderAttention"/>) against their plain references.</summary>
public class EncoderKernelTests
{
    static float[] Random(int n, int seed, double scale = 1)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 2 - 1) * scale))];
    }

    [Theory]
    [InlineData(1, 32, 16, false)]
    [InlineData(13, 40, 24, true)]     // partial tile (13 = 12 + 1) and partial panel (40 = 32 + 8)
    [InlineData(128, 1152, 384, false)] // MiniLM q|k|v
    [InlineData(130, 1536, 384, true)]  // MiniLM FFN up with GELU, a partial tile
    [InlineData(300, 96, 1536, false)]  // K = 1536 (several token blocks)
    [InlineData(140, 64, 384, false)]   // last tile of 8 rows read in place (K = 384)
    [InlineData(139, 96, 1536, true)]   // last tile of 7 rows: packed (K = 1536)
    [InlineData(45, 64, 384, false)]    // last tile of 9 rows: packed
    [InlineData(140, 96, 1536, false)]  // last tile of 8 rows read in place (K = 1536)
    [InlineData(16, 64, 1536, false)]   // last tile of 4 rows read in place
    public void Gemm_equals_the_reference(int m, int n, int k, bool gelu)
    {
        var w = Random(n * k, 1, 0.1); var b = Random(n, 2); var x = Random(m * k, 3);
        var want = new float[m * n];
        F32GemmReference.Multiply(w, b, n, k, x, m, want, gelu);
        var packed = new F32GemmWeights(w, n, k, b);
        if (!F32Gemm.Supported) { Assert.Throws<PlatformNotSupportedException>(() => F32Gemm.Multiply(packed, x, m, new float[m * n], 1)); return; }
        foreach (int threads in new[] { 1, 2, 3 })
        {
            var y = new float[m * n + 5];
            y[^1] = 7f;
            F32Gemm.Multiply(packed, x, m, y, threads, gelu);
            for (int i = 0; i < m * n; i++) Assert.True(Math.Abs(y[i] - want[i]) < 2e-5 * Math.Sqrt(k), $"threads {threads}, [{i / n}, {i % n}]: {y[i]} vs {want[i]}");
            Assert.Equal(7f, y[^1]); // nothing written past m rows
        }
    }

    [Theory]
    [InlineData(1, 24, 16)]
    [InlineData(37, 384, 384)]   // MiniLM attention output, a partial tile
    [InlineData(129, 384, 1536)] // MiniLM FFN down
    [InlineData(20, 40, 8)]      // N not a multiple of 16: the LayerNorm's scalar tail
    [InlineData(128, 384, 384)]  // batch 1 at 128 tokens: attention output (12 chunks of one panel at 2 threads)
    [InlineData(128, 384, 1536)] // batch 1 at 128 tokens: FFN down (4 token blocks x 4 panel groups)
    public void Gemm_with_residual_layernorm_equals_the_reference(int m, int n, int k)
    {
        var w = Random(n * k, 4, 0.1); var b = Random(n, 5); var x = Random(m * k, 6);
        var res0 = Random(m * n, 7, 3); var g = Random(n, 8); var beta = Random(n, 9);
        var want = (float[])res0.Clone();
        F32GemmReference.MultiplyAddNorm(w, b, n, k, x, m, want, g, beta, 1e-12f);
        var packed = new F32GemmWeights(w, n, k, b);
        if (!F32Gemm.Supported) { Assert.Throws<PlatformNotSupportedException>(() => F32Gemm.MultiplyAddNorm(packed, x, m, res0, g, beta, 1e-12f, new float[m * n], 1)); return; }
        foreach (int threads in new[] { 1, 2 })
        {
            var res = (float[])res0.Clone();
            F32Gemm.MultiplyAddNorm(packed, x, m, res, g, beta, 1e-12f, new float[m * n], threads);
            for (int i = 0; i < m * n; i++) Assert.True(Math.Abs(res[i] - want[i]) < 1e-4, $"threads {threads}, [{i / n}, {i % n}]: {res[i]} vs {want[i]}");
        }
    }

    [Fact]
    public void Vector_gelu_is_within_2e6_of_the_exact_erf_gelu()
    {
        Assert.Equal(MatMul.Avx512, F32Gemm.Supported);
        if (!F32Gemm.Supported) return; // Vector512 arithmetic without AVX-512 is emulated: nothing of the kernel to test
        var x = Enumerable.Range(0, 4001).Select(i => (float)(-10 + i * 0.005)).ToArray(); // 4001: a scalar tail too
        var y = (float[])x.Clone();
        F32Gemm.Gelu(y);
        double worst = 0;
        for (int i = 0; i < x.Length; i++)
        {
            double exact = 0.5 * x[i] * (1 + F32GemmReference.Erf(x[i] / Math.Sqrt(2)));
            worst = Math.Max(worst, Math.Abs(y[i] - exact) / Math.Max(1, Math.Abs(exact)));
        }
        Assert.True(worst < 2e-6, $"worst error {worst}"); // measured 9.0e-7 (relative to max(1, |GELU|))
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Attention_equals_the_reference(bool sizes)
    {
        Assert.False(EncoderAttention.Supports(16));
        int heads = 3, d = heads * 32;
        int[] lengths = [1, 5, 16, 17, 128, 3];
        var offsets = new int[lengths.Length + 1];
        for (int s = 0; s < lengths.Length; s++) offsets[s + 1] = offsets[s] + lengths[s];
        int n = offsets[^1];
        var qkv = Random(n * 3 * d, 11, 2);
        float[] logSize = sizes ? [.. Random(n, 12).Select(v => MathF.Log(1 + 3 * MathF.Abs(v)))] : [];
        var want = new float[n * d];
        EncoderAttentionReference.Run(qkv, offsets, heads, 32, logSize, want);
        if (!EncoderAttention.Supports(32)) { Assert.Throws<PlatformNotSupportedException>(() => EncoderAttention.Run(qkv, offsets, heads, logSize, new float[n * d], 1)); return; }
        foreach (int threads in new[] { 1, 2 })
        {
            var ctx = new float[n * d];
            var probs = new float[EncoderAttention.ProbabilityCount(offsets, heads)];
            EncoderAttention.Run(qkv, offsets, heads, logSize, ctx, threads, probs);
            for (int i = 0; i < n * d; i++) Assert.True(Math.Abs(ctx[i] - want[i]) < 1e-5, $"threads {threads}, [{i / d}, {i % d}]: {ctx[i]} vs {want[i]}");
            // Probabilities: each row sums to 1, and they reproduce ctx (sentence 4 = 128 tokens, head 2, query 7).
            long at = 0;
            for (int s = 0; s < lengths.Length; s++)
                for (int h = 0; h < heads; h++)
                    for (int i = 0; i < lengths[s]; i++, at += lengths[s])
                        Assert.Equal(1.0, probs.AsSpan((int)at, lengths[s]).ToArray().Sum(v => (double)v), 5);
            long p0 = (long)heads * (1 + 25 + 256 + 289) + 2L * 128 * 128 + 7L * 128;
            for (int c = 0; c < 32; c++)
            {
                double acc = 0;
                for (int t = 0; t < 128; t++) acc += probs[p0 + t] * qkv[(offsets[4] + t) * 3 * d + 2 * d + 2 * 32 + c];
                Assert.Equal(want[(offsets[4] + 7) * d + 2 * 32 + c], acc, 4);
            }
            ctx.AsSpan().Clear();
            EncoderAttention.Run(qkv, offsets, heads, logSize, ctx, threads); // without probabilities: the same context
            for (int i = 0; i < n * d; i++) Assert.True(Math.Abs(ctx[i] - want[i]) < 1e-5);
        }
    }
}
