using Pare.Models;
using Pare.Tensors;
using Pare.Tokenizers;
using Pare.Training;

namespace Pare.Tests.Training;

/// <summary>The whole model's gradient, exact resume, learning, and the exported GGUF against the engine.</summary>
public class TrainerTests
{
    static readonly TokenizerSpec Vocab = SyntheticModel.ByteLevelVocab(300);

    static TrainConfig Tiny(string outDir, int layers = 2, bool tied = true, int steps = 6) => new()
    {
        Name = "tiny",
        Model = new ModelShape { Dim = 32, Layers = layers, Heads = 4, KvHeads = 2, FfnDim = 48, ContextLength = 16, TiedEmbeddings = tied },
        OutDir = outDir, Seed = 99, Steps = steps, BatchSize = 4, MicroBatch = 2, SeqLen = 16,
        LearningRate = 3e-3f, MinLearningRate = 3e-4f, WarmupSteps = 2, EvalEvery = 2, EvalSequences = 3, CheckpointEvery = 0, Threads = 2,
        InitStd = 0.2f,
    };

    /// <summary>A repetitive token stream: easy to learn, so the loss must fall.</summary>
    static int[] Tokens(int n, int seed)
    {
        var r = new Random(seed);
        var phrase = Enumerable.Range(0, 23).Select(_ => r.Next(300)).ToArray();
        return [.. Enumerable.Range(0, n).Select(i => i % 29 == 0 ? r.Next(300) : phrase[i % phrase.Length])];
    }

    static string TempDir() => Directory.CreateTempSubdirectory("pare-train-").FullName;

    [Theory]
    [InlineData(1, true)]   // one block + tied head
    [InlineData(2, false)]  // two blocks + untied head
    public void Whole_model_gradient_matches_finite_differences(int layers, bool tied)
    {
        var cfg = Tiny(TempDir(), layers, tied) with { Model = new ModelShape { Dim = 16, Layers = layers, Heads = 4, KvHeads = 2, FfnDim = 24, ContextLength = 6, TiedEmbeddings = tied }, SeqLen = 6, MicroBatch = 2, InitStd = 0.5f };
        var p = new ParameterStore(cfg.Model.ToLlama(40));
        p.Initialize(5, cfg.InitStd);
        GradCheck.WholeModel(p);
    }

    [Fact]
    public void Resumed_run_reproduces_the_uninterrupted_losses_bitwise()
    {
        var train = Tokens(4000, 1);
        var valid = Tokens(400, 2);
        var straight = new Trainer(Tiny(TempDir()), Vocab, train, valid);
        straight.Run(6);

        string dir = TempDir();
        var first = new Trainer(Tiny(dir), Vocab, train, valid);
        first.Run(3);
        // A fresh process would do exactly this, and may use another thread count: the partitions do not change any sum.
        var second = new Trainer(Tiny(dir) with { Threads = 1 }, Vocab, train, valid);
        second.Resume();
        Assert.Equal(3, second.Step);
        second.Run(6);

        Assert.Equal(straight.History.Select(h => h.Loss), second.History.Select(h => h.Loss));
        Assert.Equal(straight.History.Select(h => h.GradNorm), second.History.Select(h => h.GradNorm));
        Assert.Equal(straight.Evals, second.Evals);
        Assert.Equal(straight.Parameters.Values, second.Parameters.Values);
    }

    [Fact]
    public void Bad_checkpoints_are_clear_errors()
    {
        string dir = TempDir();
        var t = new Trainer(Tiny(dir), Vocab, Tokens(4000, 1), Tokens(400, 2));
        t.Run(1);
        var bytes = File.ReadAllBytes(t.CheckpointPath);
        File.WriteAllBytes(t.CheckpointPath, bytes[..(bytes.Length / 2)]);
        Assert.Contains("truncated", Assert.Throws<PareException>(() => new Trainer(Tiny(dir), Vocab, Tokens(4000, 1), Tokens(400, 2)).Resume()).Message, StringComparison.Ordinal);
        File.WriteAllBytes(t.CheckpointPath, bytes);
        var wider = Tiny(dir) with { Model = Tiny(dir).Model with { Dim = 64 } };
        Assert.Contains("another model shape", Assert.Throws<PareException>(() => new Trainer(wider, Vocab, Tokens(4000, 1), Tokens(400, 2)).Resume()).Message, StringComparison.Ordinal);
        Assert.Throws<PareException>(() => new Trainer(Tiny(TempDir()), Vocab, Tokens(4000, 1), Tokens(400, 2)).Resume());
    }

    [Fact]
    public void Loss_goes_down()
    {
        var cfg = Tiny(TempDir(), steps: 40) with { EvalEvery = 0 };
        var t = new Trainer(cfg, Vocab, Tokens(4000, 1), Tokens(400, 1)); // same phrase: validation can improve too
        double before = t.Evaluate();
        t.Run(40);
        double after = t.Evaluate();
        Assert.InRange(before, 5.0, 6.5); // about ln(300) at initialization
        Assert.True(after < before - 1.5, $"validation loss {before:F3} -> {after:F3}");
        Assert.True(t.History[^1].Loss < t.History[0].Loss - 1.5, string.Join(" ", t.History.Select(h => h.Loss.ToString("F2"))));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Exported_gguf_gives_the_trainers_logits(bool tied)
    {
        string dir = TempDir();
        var cfg = Tiny(dir, tied: tied) with { InitStd = 0.1f };
        var t = new Trainer(cfg, Vocab, Tokens(4000, 1), Tokens(400, 2));
        t.Run(3);
        string path = Path.Combine(dir, "tiny.gguf");
        t.Export(path, GgmlType.F32);
        int[] ids = [.. Tokens(16, 5)];
        t.Model.Forward(ids);
        var expected = t.Model.Logits(16).ToArray();
        using var m = LlamaModel.Load(path);
        Assert.Equal(tied, m.Config.TiedEmbeddings);
        Assert.Equal(300, m.Tokenizer!.VocabSize);
        var got = m.CreateSession(new SessionOptions { Threads = 1 }).ForwardAll(ids);
        double maxErr = 0;
        for (int i = 0; i < got.Length; i++) maxErr = Math.Max(maxErr, Math.Abs(got[i] - expected[i]));
        Assert.True(maxErr < 1e-4, $"max |logit difference| {maxErr}");
    }
}
