using Pare.Evaluation;
using Pare.Models;
using Pare.Tensors;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Training;

/// <summary>Perplexity protocol and the Kneser-Ney baseline.</summary>
public class EvaluationTests
{
    static int[] Ids(int n, int vocab, int seed)
    {
        var r = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => r.Next(vocab))];
    }

    [Fact]
    public void Non_overlapping_windows_score_tokens_1_to_L_minus_1_by_decoding_token_by_token()
    {
        var cfg = TestModels.OracleShapes[1].Config;
        using var m = LlamaModel.Load(TestModels.Get("ppl", cfg, GgmlType.F32));
        var ids = Ids(50, cfg.VocabSize, 1);
        var res = Perplexity.Evaluate(m, ids, new PerplexityOptions { Context = 16, Threads = 1 });
        // Windows [0,16) [16,32) [32,48) [48,50): 15 + 15 + 15 + 1 predictions.
        Assert.Equal(4, res.Windows);
        Assert.Equal(46, res.Tokens);
        // Independent path: incremental decoding, one token at a time, per window.
        double nll = 0;
        var s = m.CreateSession(new SessionOptions { ContextLength = 16, Threads = 1 });
        for (int start = 0; start < ids.Length; start += 16)
        {
            s.Reset();
            int end = Math.Min(start + 16, ids.Length);
            for (int p = start; p < end - 1; p++)
            {
                var logits = s.Forward(ids.AsSpan(p, 1));
                nll += Perplexity.NegLogSoftmax(logits, ids[p + 1]);
            }
        }
        Assert.Equal(Math.Exp(nll / 46), res.Ppl, 1e-4 * res.Ppl);
    }

    [Fact]
    public void Sliding_window_scores_every_token_once()
    {
        var cfg = TestModels.OracleShapes[1].Config;
        using var m = LlamaModel.Load(TestModels.Get("ppl", cfg, GgmlType.F32));
        var ids = Ids(70, cfg.VocabSize, 2);
        var res = Perplexity.Evaluate(m, ids, new PerplexityOptions { Context = 16, Stride = 8, Threads = 1 });
        Assert.Equal(69, res.Tokens);
        // A window as long as the text is one window either way.
        var one = Perplexity.Evaluate(m, ids.AsSpan(0, 16), new PerplexityOptions { Context = 16, Stride = 4, Threads = 1 });
        var plain = Perplexity.Evaluate(m, ids.AsSpan(0, 16), new PerplexityOptions { Context = 16, Threads = 1 });
        Assert.Equal(15, one.Tokens);
        Assert.Equal(plain.Ppl, one.Ppl, 1e-9);
        Assert.Throws<PareException>(() => Perplexity.Evaluate(m, ids, new PerplexityOptions { Context = 16, Stride = 17 }));
    }

    [Fact]
    public void Kneser_ney_probabilities_sum_to_one()
    {
        int vocab = 50;
        var r = new Random(3);
        // Skewed text: a few tokens are frequent, so counts of 1 and 2 both occur.
        int[] train = [.. Enumerable.Range(0, 3000).Select(_ => (int)(vocab * Math.Pow(r.NextDouble(), 3)))];
        var kn = new KneserNey(train, vocab);
        foreach (var (u, v) in new[] { (train[0], train[1]), (train[10], train[11]), (0, 0), (49, 48), (48, 49) })
        {
            double s3 = Enumerable.Range(0, vocab).Sum(w => kn.P3(u, v, w));
            double s2 = Enumerable.Range(0, vocab).Sum(w => kn.P2(v, w));
            Assert.Equal(1.0, s3, 1e-9);
            Assert.Equal(1.0, s2, 1e-9);
        }
        Assert.Equal(1.0, Enumerable.Range(0, vocab).Sum(kn.P1), 1e-9);
        Assert.All(Enumerable.Range(0, vocab), w => Assert.True(kn.P3(49, 49, w) > 0));
    }

    [Fact]
    public void Kneser_ney_prefers_the_text_it_was_trained_on()
    {
        int vocab = 200;
        var phrase = Ids(40, vocab, 4);
        int[] train = [.. Enumerable.Range(0, 4000).Select(i => phrase[i % 40])];
        var kn = new KneserNey(train, vocab);
        double seen = kn.Evaluate(train.AsSpan(0, 400)).Ppl;
        double unrelated = kn.Evaluate(Ids(400, vocab, 5)).Ppl;
        Assert.True(seen < 1.5, $"ppl on train text {seen}");
        Assert.True(unrelated > 50, $"ppl on unrelated text {unrelated}");
    }
}
