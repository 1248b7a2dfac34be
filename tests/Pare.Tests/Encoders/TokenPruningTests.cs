using Pare.Models.Bert;
using Pare.Pruning.Tokens;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Encoders;

/// <summary>Token pruning/merging inside the MiniLM forward pass: exactness at keep 1, token counts, packing, quality, CLI errors.</summary>
public class TokenPruningTests
{
    static readonly string[] Sentences =
    [
        "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, I thought I would sail about a little.",
        "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness.",
        "The quick brown fox jumps over the lazy dog near the bank of the river.",
        "Happy families are all alike; every unhappy family is unhappy in its own way.",
        "In a hole in the ground there lived a hobbit, not a nasty, dirty, wet hole filled with the ends of worms.",
        "She had always wanted to see the sea, and when the train finally came around the last hill she pressed her face to the window.",
        "The committee postponed its decision on the new bridge until engineers could inspect the foundations again.",
        "Rain fell all night on the tin roof, and by morning the small creek behind the barn had become a brown torrent.",
    ];

    static BertModel MiniLm => EncoderModels.Model(EncoderModels.MiniLm);

    static float[][] Embed(IReadOnlyList<string> texts, ITokenReducer? reducer, int batch = 8, TokenTrace? trace = null) =>
        MiniLm.Embed(texts, new EmbedOptions { Threads = 2, BatchSize = batch, TokenReducer = reducer, Trace = trace }).Vectors;

    [Theory]
    [InlineData("zero-tprune")]
    [InlineData("tome")]
    [InlineData("fopru-rank")]
    [InlineData("fopru-row")]
    [InlineData("correlation")]
    public void Keep_one_is_exactly_the_dense_embedding(string method)
    {
        var dense = Embed(Sentences, null);
        var kept = Embed(Sentences, TokenPruners.Create(method, new TokenPruneOptions { Keep = 1.0, Layers = [0, 2, 4] }));
        for (int s = 0; s < Sentences.Length; s++) Assert.Equal(dense[s], kept[s]);
    }

    [Theory]
    [InlineData("zero-tprune")]
    [InlineData("tome")]
    [InlineData("fopru-rank")]
    [InlineData("fopru-row")]
    [InlineData("correlation")]
    public void Token_counts_per_layer_follow_the_keep_schedule(string method)
    {
        var trace = new TokenTrace();
        Embed(Sentences, TokenPruners.Create(method, new TokenPruneOptions { Keep = 0.3, Layers = [1, 3] }), trace: trace);
        var lengths = Sentences.Select(t => MiniLm.Tokenize(t).Ids.Length).ToArray();
        int n0 = lengths.Sum();
        int n1 = lengths.Sum(t => 2 + (int)Math.Round((t - 2) * Math.Sqrt(0.3)));
        int n3 = lengths.Sum(t => 2 + (int)Math.Round((t - 2) * 0.3));
        Assert.Equal(6, trace.Layers.Count);
        int[] attention = [n0, n0, n1, n1, n3, n3];
        int[] ffn = [n0, n1, n1, n3, n3, n3];
        for (int l = 0; l < 6; l++)
        {
            Assert.Equal(attention[l], trace.Layers[l].Attention);
            Assert.Equal(ffn[l], trace.Layers[l].FeedForward);
        }
        var dense = new TokenTrace();
        Embed(Sentences, null, trace: dense);
        Assert.True(trace.TotalFlops(MiniLm.Config) < 0.6 * dense.TotalFlops(MiniLm.Config));
    }

    [Theory]
    [InlineData("zero-tprune")]
    [InlineData("tome")]
    [InlineData("fopru-row")]
    public void Packed_batch_prunes_each_sentence_as_if_alone(string method)
    {
        var reducer = TokenPruners.Create(method, new TokenPruneOptions { Keep = 0.4, Layers = [1, 3] });
        var packed = Embed(Sentences, reducer, batch: 8);
        var alone = Embed(Sentences, reducer, batch: 1);
        for (int s = 0; s < Sentences.Length; s++) Assert.True(SentencePooling.Cosine(packed[s], alone[s]) > 0.99999, $"sentence {s}");
    }

    [Theory]
    [InlineData("zero-tprune")]
    [InlineData("tome")]
    [InlineData("fopru-rank")]
    [InlineData("fopru-row")]
    [InlineData("correlation")]
    public void Cosine_to_dense_falls_gracefully_with_fewer_tokens(string method)
    {
        var dense = Embed(Sentences, null);
        double Mean(double keep) => Embed(Sentences, TokenPruners.Create(method, new TokenPruneOptions { Keep = keep, Layers = [3] }))
            .Select((v, s) => SentencePooling.Cosine(v, dense[s])).Average();
        double c7 = Mean(0.7), c5 = Mean(0.5), c3 = Mean(0.3);
        // FoPru and correlation keep tokens by attention scores (built for redundant image tokens): on short text they lose more.
        double floor = method is "tome" or "zero-tprune" ? 0.9 : 0.8;
        Assert.True(c5 > floor, $"keep 0.5: mean cosine {c5:F4}");
        Assert.True(c7 >= c5 && c5 >= c3, $"{c7:F4} {c5:F4} {c3:F4}");
        Assert.True(c3 > floor - 0.1 && c7 < 1, $"{c7:F4} {c3:F4}");
    }

    [Fact]
    public void Zero_tprune_importance_is_the_pagerank_of_the_attention_graph()
    {
        // Everyone attends to token 2: it must carry nearly all the importance.
        int n = 4;
        var att = new float[n * n];
        for (int i = 0; i < n; i++) { att[i * n + 2] = 0.97f; att[i * n + i] += 0.03f; }
        var s = new SentenceTokens(0, n, n, att, new float[n * 2], 2, [1, 1, 1, 1]);
        var imp = ZeroTPrune.Importance(s);
        Assert.Equal(1.0, imp.Sum(), 6);
        Assert.True(imp[2] > 0.9);
    }

    [Fact]
    public void Tome_merges_the_most_similar_pair_as_a_size_weighted_mean()
    {
        // Tokens 1..4 ([CLS] 0, [SEP] 5): keys 1 and 2 identical, the rest orthogonal. One merge: 1 into 2.
        float[] keys = [1, 0, 0, 0, /*1*/ 0, 1, 0, 0, /*2*/ 0, 1, 0, 0, /*3*/ 0, 0, 1, 0, /*4*/ 0, 0, 0, 1, /*5*/ 1, 1, 0, 0];
        var s = new SentenceTokens(3, 6, 6, new float[36], keys, 4, [1, 1, 1, 1, 1, 1]);
        var a = new TokenMerging(new TokenPruneOptions { Keep = 0.75, Layers = [3] }).Assign(s);
        Assert.Equal([0, 1, 1, 2, 3, 4], a);
    }

    [Theory]
    [InlineData("--token-prune", "magic", "magic")]
    [InlineData("--keep", "0", "--keep must be in (0, 1]")]
    [InlineData("--keep", "1.5", "--keep must be in (0, 1]")]
    [InlineData("--prune-layer", "6", "--prune-layer must be between 0 and 5")]
    public void Bad_token_prune_options_are_one_line(string option, string value, string message)
    {
        string dir = Directory.CreateTempSubdirectory("pare-tprune-").FullName;
        string text = Path.Combine(dir, "in.txt");
        File.WriteAllLines(text, ["A line."]);
        var args = new List<string> { "embed", EncoderModels.Get(EncoderModels.MiniLm).OnnxPath, "-f", text };
        if (option != "--token-prune") args.AddRange(["--token-prune", "tome"]);
        args.AddRange([option, value]);
        var r = PareCli.Run([.. args]);
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.ErrorLines);
        Assert.Contains(message, r.Stderr, StringComparison.Ordinal);
        Assert.Equal("", r.Stdout);
    }
}
