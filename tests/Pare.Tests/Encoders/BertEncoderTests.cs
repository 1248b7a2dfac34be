using Pare.Models.Bert;

namespace Pare.Tests.Encoders;

/// <summary>The packed, kernel-based forward pass against the plain reference on small random encoders.</summary>
public class BertEncoderTests
{
    internal static (BertConfig, BertTensors) Random(int dim, int heads, int ffn, int layers, int vocab = 50, int positions = 40, int seed = 1)
    {
        var c = new BertConfig { VocabSize = vocab, Dim = dim, Layers = layers, Heads = heads, FfnDim = ffn, MaxPositions = positions, LayerNormEps = 1e-12f };
        var rng = new Random(seed);
        var t = new BertTensors();
        foreach (var (name, shape) in BertTensors.Expected(c))
        {
            long count = shape.Aggregate(1L, (a, b) => a * b);
            bool lnWeight = name.EndsWith("LayerNorm.weight", StringComparison.Ordinal);
            t.Add(name, shape, [.. Enumerable.Range(0, (int)count).Select(_ => (float)(lnWeight ? 1 + 0.2 * (rng.NextDouble() - 0.5) : (rng.NextDouble() - 0.5) * 0.4))]);
        }
        return (c, t);
    }

    [Theory]
    [InlineData(32, 4, 64, 2)]
    [InlineData(48, 3, 80, 1)]
    [InlineData(24, 6, 40, 3)]
    [InlineData(96, 4, 192, 1)]   // 351 x 96 and 351 x 192 values: the bias/GELU and LayerNorm rows split over threads
    [InlineData(64, 2, 96, 2)]    // head size 32: the EncoderAttention kernel (AVX-512) runs, FFN 96 = three panels
    [InlineData(128, 4, 520, 1)]  // head size 32, FFN with a partial panel (520 = 16 x 32 + 8), 351 tokens: two FFN slices
    public void Packed_batches_equal_the_reference_forward(int dim, int heads, int ffn, int layers)
    {
        var (c, t) = Random(dim, heads, ffn, layers);
        var enc = new BertEncoder(c, new BertWeights(c, t));
        var rng = new Random(5);
        // Lengths around the vector width and odd ones: the attention's vector and tail paths both run.
        // Three times over: 351 tokens, more than one slice of the linear layers' products.
        int[][] batch = [.. new[] { 1, 2, 7, 8, 9, 17, 33, 40, 1, 2, 7, 8, 9, 17, 33, 40, 1, 2, 7, 8, 9, 17, 33, 40 }.Select(n => Enumerable.Range(0, n).Select(_ => rng.Next(c.VocabSize)).ToArray())];
        foreach (int threads in new[] { 1, 2 })
        {
            var h = enc.Forward(batch, threads);
            for (int s = 0; s < batch.Length; s++)
            {
                var want = BertEncoderReference.Forward(c, t, batch[s]);
                for (int i = 0; i < batch[s].Length; i++)
                    for (int e = 0; e < dim; e++)
                        Assert.True(Math.Abs(h.Row(s, i)[e] - want[i][e]) < 2e-4, $"sentence {s} token {i} feature {e}: {h.Row(s, i)[e]} vs {want[i][e]}");
            }
        }
    }

    [Fact]
    public void Inputs_past_the_position_table_or_vocabulary_are_refused()
    {
        var (c, t) = Random(16, 2, 32, 1, positions: 10);
        var enc = new BertEncoder(c, new BertWeights(c, t));
        Assert.Throws<PareException>(() => enc.Forward([new int[11]], 1));
        Assert.Throws<PareException>(() => enc.Forward([[1, 2, 50]], 1));
        Assert.Throws<PareException>(() => enc.Forward([[]], 1));
    }
}
