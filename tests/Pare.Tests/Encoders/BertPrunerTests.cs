using Pare.Models.Bert;
using Pare.Pruning;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Encoders;

/// <summary>Weight pruning of BERT encoders with the decoder's methods.</summary>
public class BertPrunerTests
{
    [Theory]
    [InlineData(PruneMethod.Magnitude, "0.5")]
    [InlineData(PruneMethod.Wanda, "0.7")]
    [InlineData(PruneMethod.SparseGpt, "2:4")]
    [InlineData(PruneMethod.OBert, "0.5")]
    [InlineData(PruneMethod.OBert, "2:4")]
    public void Linear_layers_reach_the_sparsity_and_the_rest_stays_dense(PruneMethod method, string pattern)
    {
        var (c, t) = BertEncoderTests.Random(32, 4, 64, 2, vocab: 60);
        var vocab = new[] { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" }.Concat(Enumerable.Range(0, 55).Select(i => $"w{i}")).ToArray();
        var model = new BertModel(c, t, vocab);
        var rng = new Random(2);
        int[][] calib = [.. Enumerable.Range(0, 6).Select(_ => new[] { 2 }.Concat(Enumerable.Range(0, 10).Select(_ => 5 + rng.Next(55))).Append(3).ToArray())];
        var pat = pattern.Contains(':') ? SparsityPattern.Parse(pattern, 0) : SparsityPattern.Unstructured(double.Parse(pattern, System.Globalization.CultureInfo.InvariantCulture));
        var pruned = BertPruner.Prune(model, calib, new BertPruneOptions { Method = method, Pattern = pat, Threads = 2 });
        Assert.InRange(BertPruner.Sparsity(c, pruned), pat.Ratio - 0.015, pat.Ratio + 0.015); // per-row counts round
        Assert.Equal(t.Get("embeddings.word_embeddings.weight"), pruned.Get("embeddings.word_embeddings.weight"));
        Assert.Equal(t.Get("encoder.layer.1.output.dense.bias"), pruned.Get("encoder.layer.1.output.dense.bias"));
        Assert.Equal(0.0, BertPruner.Sparsity(c, t)); // the model's own tensors are untouched
        if (pat.IsNM)
        {
            var w = pruned.Get("encoder.layer.0.intermediate.dense.weight");
            for (int g = 0; g < w.Length; g += 4) Assert.True(w.AsSpan(g, 4).ToArray().Count(v => v == 0) >= 2);
        }
    }

    [Fact]
    public void On_minilm_at_70_percent_sparsegpt_keeps_embeddings_closer_to_dense_than_magnitude()
    {
        var dense = EncoderModels.Model(EncoderModels.MiniLm);
        var calib = EncoderModels.TestSentences(40, seed: 11).Select(s => dense.Tokenize(s).Ids).ToArray();
        var texts = EncoderModels.TestSentences(12, seed: 12);
        var want = dense.Embed(texts, new EmbedOptions { Threads = 2 }).Vectors;
        double Cos(PruneMethod m)
        {
            var t = BertPruner.Prune(dense, calib, new BertPruneOptions { Method = m, Pattern = SparsityPattern.Unstructured(0.7), Threads = 2 });
            var got = new BertModel(dense.Config, t, dense.Tokenizer.Vocab).Embed(texts, new EmbedOptions { Threads = 2 }).Vectors;
            return want.Zip(got).Average(p => SentencePooling.Cosine(p.First, p.Second));
        }
        double mag = Cos(PruneMethod.Magnitude), sgpt = Cos(PruneMethod.SparseGpt);
        Assert.True(sgpt > mag + 0.05, $"SparseGPT {sgpt:F4} vs magnitude {mag:F4}");
    }
}
