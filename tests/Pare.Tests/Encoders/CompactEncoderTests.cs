using Pare.Models.Bert;
using Pare.Pruning;

namespace Pare.Tests.Encoders;

/// <summary>The encoder with its linear layers in the compact sparse format.</summary>
public class CompactEncoderTests
{
    [Theory]
    [InlineData("0.5")]
    [InlineData("2:4")]
    [InlineData("0.9")]
    public void The_compact_encoder_equals_the_dense_one_on_pruned_weights(string pattern)
    {
        var (c, t) = BertEncoderTests.Random(64, 4, 128, 2, vocab: 40);
        var vocab = new[] { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" }.Concat(Enumerable.Range(0, 35).Select(i => $"w{i}")).ToArray();
        var pat = pattern.Contains(':') ? SparsityPattern.Parse(pattern, 0) : SparsityPattern.Unstructured(double.Parse(pattern, System.Globalization.CultureInfo.InvariantCulture));
        var pruned = BertPruner.Prune(new BertModel(c, t, vocab), [], new BertPruneOptions { Method = PruneMethod.Magnitude, Pattern = pat, Threads = 2 });
        var dense = new BertModel(c, pruned, vocab);
        var compact = new BertModel(c, pruned, vocab, compact: true);
        Assert.True(compact.Encoder.Weights.Compact);
        Assert.NotNull(compact.Encoder.Weights.Layers[0].Up.Sparse);
        // Fewer bytes than the dense F32 layout.
        Assert.True(compact.Encoder.Weights.Layers[0].Up.ByteLength < dense.Encoder.Weights.Layers[0].Up.ByteLength);
        var rng = new Random(3);
        int[][] batch = [.. new[] { 1, 5, 17, 33, 9 }.Select(n => Enumerable.Range(0, n).Select(_ => rng.Next(c.VocabSize)).ToArray())];
        foreach (int threads in new[] { 1, 2 })
        {
            var a = dense.EmbedIds(batch, new EmbedOptions { Threads = threads });
            var b = compact.EmbedIds(batch, new EmbedOptions { Threads = threads });
            for (int s = 0; s < batch.Length; s++)
                for (int i = 0; i < c.Dim; i++) Assert.True(Math.Abs(a[s][i] - b[s][i]) < 1e-5, $"sentence {s} feature {i}: {a[s][i]} vs {b[s][i]}");
        }
    }

    [Fact]
    public void Widths_that_are_not_multiples_of_32_are_refused_for_the_compact_format()
    {
        var (c, t) = BertEncoderTests.Random(48, 3, 80, 1);
        Assert.Throws<PareException>(() => new BertWeights(c, t, compact: true));
    }
}
