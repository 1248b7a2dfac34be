using Pare.Models;
using Pare.Tensors;
using Pare.Tokenizers;
using Pare.Training;

namespace Pare.Tests.Training;

/// <summary>init_from: a run can start from an exported GGUF (how pare-long continues pare-ref, and later itself).</summary>
public class InitFromTests
{
    static readonly TokenizerSpec Vocab = SyntheticModel.ByteLevelVocab(300);

    static TrainConfig Tiny(string outDir, int dim = 32) => new()
    {
        Name = "tiny",
        Model = new ModelShape { Dim = dim, Layers = 2, Heads = 4, KvHeads = 2, FfnDim = 48, ContextLength = 16 },
        OutDir = outDir, Seed = 7, Steps = 4, BatchSize = 2, MicroBatch = 2, SeqLen = 16, WarmupSteps = 1, EvalEvery = 0, CheckpointEvery = 0, Threads = 1,
    };

    static int[] Tokens(int n) => [.. Enumerable.Range(0, n).Select(i => (i * 37 + i / 7) % 300)];

    [Theory]
    [InlineData(GgmlType.F32, 0f)]
    [InlineData(GgmlType.F16, 1e-3f)]
    public void A_run_started_from_an_export_has_its_weights(GgmlType type, float tol)
    {
        string dir = Directory.CreateTempSubdirectory("pare-init-").FullName;
        var first = new Trainer(Tiny(dir), Vocab, Tokens(2000), Tokens(200));
        first.Run(3);
        string gguf = Path.Combine(dir, "first.gguf");
        first.Export(gguf, type);

        var second = new Trainer(Tiny(dir) with { InitFrom = gguf, Seed = 8 }, Vocab, Tokens(2000), Tokens(200));
        var a = first.Parameters.Values;
        var b = second.Parameters.Values;
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= tol * Math.Max(1, Math.Abs(a[i])), $"weight {i}: {a[i]} vs {b[i]}");
        // Different from what seed 8 alone would give.
        var fresh = new Trainer(Tiny(dir) with { Seed = 8 }, Vocab, Tokens(2000), Tokens(200));
        Assert.NotEqual(fresh.Parameters.Values, b);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void A_differently_shaped_or_missing_model_is_a_clear_error()
    {
        string dir = Directory.CreateTempSubdirectory("pare-init-").FullName;
        var first = new Trainer(Tiny(dir), Vocab, Tokens(2000), Tokens(200));
        string gguf = Path.Combine(dir, "first.gguf");
        first.Export(gguf, GgmlType.F32);
        var e = Assert.Throws<PareException>(() => new Trainer(Tiny(dir, dim: 16) with { InitFrom = gguf }, Vocab, Tokens(2000), Tokens(200)));
        Assert.Contains("has shape", e.Message);
        e = Assert.Throws<PareException>(() => new Trainer(Tiny(dir) with { InitFrom = Path.Combine(dir, "none.gguf") }, Vocab, Tokens(2000), Tokens(200)));
        Assert.Contains("not found", e.Message);
        Directory.Delete(dir, true);
    }
}
