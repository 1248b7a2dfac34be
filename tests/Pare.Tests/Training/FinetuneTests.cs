using Pare.Formats.Gguf;
using Pare.Pruning;
using Pare.Tests.Pruning;
using Pare.Tests.TestSupport;
using Pare.Tensors;
using Pare.Training;

namespace Pare.Tests.Training;

/// <summary>Recovery fine-tuning: LoRA merge and gradients, the loss falls, pruned zeros stay zero in the written file.</summary>
public class FinetuneTests
{
    static ParamInfo Matrix(int rows, int cols) => new("m", 0, rows, cols, true);

    [Fact]
    public void Merged_lora_weights_give_the_forward_pass_with_adapters()
    {
        int rows = 6, cols = 10, rank = 3, n = 4;
        var a = new LoraAdapter(Matrix(rows, cols), rank, alpha: 6f, seed: 5);
        GradCheck.Random(a.B.Length, 2).CopyTo(a.B, 0);
        var w0 = GradCheck.Random(rows * cols, 3);
        var x = GradCheck.Random(n * cols, 4);
        var merged = new float[rows * cols];
        a.Merge(w0, default, merged);
        for (int t = 0; t < n; t++)
            for (int i = 0; i < rows; i++)
            {
                // x W0ᵀ + s · (x Aᵀ) Bᵀ, with the adapters applied separately.
                double baseY = 0, mergedY = 0;
                for (int j = 0; j < cols; j++) { baseY += x[t * cols + j] * w0[i * cols + j]; mergedY += x[t * cols + j] * merged[i * cols + j]; }
                double lora = 0;
                for (int k = 0; k < rank; k++)
                {
                    double xa = 0;
                    for (int j = 0; j < cols; j++) xa += x[t * cols + j] * a.A[k * cols + j];
                    lora += xa * a.B[i * rank + k];
                }
                Assert.Equal(baseY + 2.0 * lora, mergedY, 4);
            }
        // A mask keeps its zeros whatever the adapters add.
        var zero = new bool[rows * cols];
        zero[0] = zero[7] = zero[59] = true;
        a.Merge(w0, zero, merged);
        Assert.Equal(0f, merged[0]); Assert.Equal(0f, merged[7]); Assert.Equal(0f, merged[59]);
        Assert.Equal(w0[1] + (merged[1] - w0[1]), merged[1]);
    }

    [Fact]
    public void Lora_gradients_match_finite_differences()
    {
        int rows = 5, cols = 7, rank = 2;
        var a = new LoraAdapter(Matrix(rows, cols), rank, alpha: 4f, seed: 8);
        GradCheck.Random(a.B.Length, 2).CopyTo(a.B, 0);
        var w0 = GradCheck.Random(rows * cols, 3);
        var R = GradCheck.Random(rows * cols, 4); // L = Σ R ⊙ W_eff, so ∂L/∂W_eff = R
        var merged = new float[rows * cols];
        double Loss() { a.Merge(w0, default, merged); return GradCheck.Dot(R, merged); }
        a.Backward(R);
        GradCheck.Check("dA", a.A, a.GradA, Loss);
        GradCheck.Check("dB", a.B, a.GradB, Loss);
    }

    static int[] Tokens(int n, int vocab, int seed)
    {
        var r = new Random(seed);
        var phrase = Enumerable.Range(0, 19).Select(_ => r.Next(vocab)).ToArray();
        return [.. Enumerable.Range(0, n).Select(i => i % 31 == 0 ? r.Next(vocab) : phrase[i % phrase.Length])];
    }

    [Theory]
    [InlineData(4)]  // LoRA rank 4
    [InlineData(0)]  // full fine-tuning
    public void A_few_steps_lower_the_loss_and_pruned_zeros_stay_zero(int rank)
    {
        var dense = TestModels.Get("gqa-untied", PruneTestSupport.Gqa, GgmlType.F32);
        var sparse = PruneTestSupport.Pruned(dense, PruneTestSupport.Options(PruneMethod.Magnitude, SparsityPattern.Unstructured(0.5)));
        var tokens = Tokens(5000, PruneTestSupport.Gqa.VocabSize, 1);
        var ft = new Finetune(sparse, tokens, new FinetuneOptions { Steps = 8, LoraRank = rank, LearningRate = rank > 0 ? 1e-2f : 3e-3f, BatchSize = 4, SeqLen = 32, WarmupSteps = 1, Threads = 2 });
        Assert.True(ft.MaskedZeros > 0);
        var inputs = tokens.AsSpan(100, 4 * 32).ToArray();
        var targets = tokens.AsSpan(101, 4 * 32).ToArray();
        double before = ft.Model.Step(inputs, targets, 0f) / inputs.Length;
        string outPath = Path.Combine(PruneTestSupport.NewDir(), "ft.gguf");
        var res = ft.Run(outPath);
        double after = ft.Model.Step(inputs, targets, 0f) / inputs.Length;
        Assert.True(after < before - 0.1, $"loss {before:F4} -> {after:F4}");
        Assert.Equal(8, res.Steps);

        using var fin = GgufFile.Open(sparse);
        using var fout = GgufFile.Open(outPath);
        long changed = 0;
        foreach (var l in PruneTestSupport.Linears)
            for (int b = 0; b < PruneTestSupport.Gqa.Layers; b++)
            {
                var x = PruneTestSupport.ReadMatrix(fin, $"blk.{b}.{l}.weight", out _, out _);
                var y = PruneTestSupport.ReadMatrix(fout, $"blk.{b}.{l}.weight", out _, out _);
                for (int i = 0; i < x.Length; i++)
                {
                    if (x[i] == 0) Assert.Equal(0f, y[i]);
                    else if (x[i] != y[i]) changed++;
                }
            }
        Assert.True(changed > 0);
        Assert.Equal(rank > 0 ? $"lora-{rank}" : "full", fout.GetString("pare.finetune.mode"));
        // The written file runs in the engine and gives the trained model's logits.
        using var m = Pare.Models.LlamaModel.Load(outPath);
        Assert.Equal(PruneTestSupport.Gqa.Dim, m.Config.Dim);
    }

    [Theory]
    [InlineData(2)]  // LoRA: the snapshot holds the merged adapters
    [InlineData(0)]  // full
    public void Save_every_writes_snapshots_of_the_trained_model(int rank)
    {
        var dense = TestModels.Get("gqa-untied", PruneTestSupport.Gqa, GgmlType.F32);
        var ft = new Finetune(dense, Tokens(3000, PruneTestSupport.Gqa.VocabSize, 3),
            new FinetuneOptions { Steps = 5, SaveEvery = 2, LoraRank = rank, LearningRate = 1e-2f, BatchSize = 2, SeqLen = 16, WarmupSteps = 1, Threads = 2 });
        string dir = PruneTestSupport.NewDir(), outPath = Path.Combine(dir, "ft.gguf");
        var reported = new List<string>();
        ft.Run(outPath, new SyncProgress(p => { if (p.Snapshot != null) reported.Add(p.Snapshot); }));
        string s2 = Finetune.SnapshotPath(outPath, 2), s4 = Finetune.SnapshotPath(outPath, 4);
        Assert.Equal(Path.Combine(dir, "ft.step2.gguf"), s2);
        Assert.Equal([s2, s4], reported);
        Assert.Equal(["ft.gguf", "ft.step2.gguf", "ft.step4.gguf"], Directory.GetFiles(dir).Select(p => Path.GetFileName(p)!).Order().ToArray());
        using var f0 = GgufFile.Open(dense);
        var w0 = PruneTestSupport.ReadMatrix(f0, "blk.0.ffn_up.weight", out _, out _);
        float[]? prev = null;
        foreach (var (path, step) in new[] { (s2, 2L), (s4, 4L), (outPath, 5L) })
        {
            using var f = GgufFile.Open(path);
            Assert.Equal(step, f.GetInt("pare.finetune.steps"));
            var w = PruneTestSupport.ReadMatrix(f, "blk.0.ffn_up.weight", out _, out _);
            Assert.NotEqual(w0, w);            // trained (LoRA: B is no longer zero after two steps)
            if (prev != null) Assert.NotEqual(prev, w);
            prev = w;
        }
    }

    [Fact]
    public void Cancellation_writes_nothing()
    {
        var dense = TestModels.Get("gqa-untied", PruneTestSupport.Gqa, GgmlType.F32);
        var ft = new Finetune(dense, Tokens(3000, PruneTestSupport.Gqa.VocabSize, 2), new FinetuneOptions { Steps = 50, LoraRank = 2, BatchSize = 2, SeqLen = 16, Threads = 2 });
        string outPath = Path.Combine(PruneTestSupport.NewDir(), "ft.gguf");
        using var cts = new CancellationTokenSource();
        var prog = new SyncProgress(p => { if (p.Step == 2) cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => ft.Run(outPath, prog, cts.Token));
        Assert.False(File.Exists(outPath));
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(outPath)!));
    }

    sealed class SyncProgress(Action<FinetuneProgress> a) : IProgress<FinetuneProgress> { public void Report(FinetuneProgress v) => a(v); }
}
