using Pare.Formats.Gguf;
using Pare.Models;
using Pare.Pruning;
using Pare.Pruning.Structured;
using Pare.Tensors;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Pruning;

/// <summary>Adapt-Pruner: layer-wise ratios, incremental rounds with fine-tuning, and the deleted structure equals the zeroed one.</summary>
public class AdaptPrunerTests
{
    static readonly LlamaConfig Shape = TestModels.OracleShapes.Single(s => s.Name == "gqa-tied").Config; // 4 layers, 3 KV groups of 2 heads
    static readonly int[] Probe = [.. Enumerable.Range(0, 40).Select(i => (i * 37 + 11) % 512)];

    static int[] TrainTokens(int n, int vocab)
    {
        var r = new Random(7);
        var phrase = Enumerable.Range(0, 23).Select(_ => r.Next(vocab)).ToArray();
        return [.. Enumerable.Range(0, n).Select(i => i % 29 == 0 ? r.Next(vocab) : phrase[i % phrase.Length])];
    }

    static AdaptPrunerResult Run(string dense, string outPath, int stepsPerRound) =>
        AdaptPruner.Run(dense, outPath, new AdaptPrunerOptions
        {
            Ratio = 0.3, Step = 0.1, StepsPerRound = stepsPerRound, Samples = 4, SeqLen = 16, BatchSize = 2, TrainSeqLen = 16,
            LearningRate = 3e-3f, Threads = 2,
        }, TrainTokens(4000, Shape.VocabSize), new CalibrationSource.RandomTokens());

    [Fact]
    public void Layer_sparsity_follows_importance_around_the_target_and_counts_never_grow()
    {
        var s = AdaptPruner.LayerSparsity([0.1, 0.2, 0.3], 0.3, 0.05);
        Assert.Equal([0.35, 0.3, 0.25], s.Select(x => Math.Round(x, 12)));       // the most changing layer is pruned least
        Assert.Equal([0.2, 0.2], AdaptPruner.LayerSparsity([0.5, 0.5], 0.2, 0.05)); // equal importances: the target
        var shape = new BlockShape(Shape.Dim, Shape.HeadDim, Shape.Heads, Shape.KvHeads, Shape.FfnDim);
        Assert.Equal((Shape.KvHeads, Shape.FfnDim), AdaptPruner.LayerCounts(shape, 0, Shape.KvHeads, Shape.FfnDim));
        var (g, ch) = AdaptPruner.LayerCounts(shape, 0.5, Shape.KvHeads, Shape.FfnDim);
        double kept = g * (double)shape.GroupParams + ch * (double)shape.ChannelParams;
        double total = shape.KvHeads * (double)shape.GroupParams + shape.Ffn * (double)shape.ChannelParams;
        Assert.InRange(kept / total, 0.5 - 0.02, 0.5 + 0.02);
        Assert.Equal((1, 10), AdaptPruner.LayerCounts(shape, 0.1, 1, 10));      // never more than it has now
        Assert.Equal((1, 1), AdaptPruner.LayerCounts(shape, 0.99, Shape.KvHeads, Shape.FfnDim)); // at least one of each
    }

    [Fact]
    public void Without_training_the_written_model_equals_the_dense_model_with_the_removed_structures_zeroed()
    {
        string dir = PruneTestSupport.NewDir();
        string dense = TestModels.Get("gqa-tied", Shape, GgmlType.F32), outPath = Path.Combine(dir, "adapt.gguf");
        var res = Run(dense, outPath, stepsPerRound: 0);
        Assert.Equal(3, res.Rounds.Count);
        Assert.True(res.Rounds[0].Removed < res.Rounds[1].Removed && res.Rounds[1].Removed < res.Rounds[2].Removed);
        Assert.InRange(res.Removed, 0.24, 0.36);
        Assert.Equal(0, res.TrainSteps);

        // Kept groups / channels: the pruned file's k rows and up rows, matched in order to the dense file's.
        using var fd = GgufFile.Open(dense);
        using var fp = GgufFile.Open(outPath);
        var w = new GgufWriter { Alignment = fd.Alignment };
        foreach (var (k, v) in fd.MetadataList) w.Set(k, v);
        int hd = Shape.HeadDim, gw = Shape.Heads / Shape.KvHeads * hd;
        var keptGroups = new bool[Shape.Layers][];
        var keptChannels = new bool[Shape.Layers][];
        for (int l = 0; l < Shape.Layers; l++)
        {
            keptGroups[l] = MatchRows(fd, fp, $"blk.{l}.attn_k.weight", hd);
            keptChannels[l] = MatchRows(fd, fp, $"blk.{l}.ffn_up.weight", 1);
            Assert.Equal(res.Pruned.Heads[l], keptGroups[l].Count(x => x) * (Shape.Heads / Shape.KvHeads));
            Assert.Equal(res.Pruned.Ffn[l], keptChannels[l].Count(x => x));
        }
        foreach (var t in fd.Tensors)
        {
            var parts = t.Name.Split('.');
            if (parts.Length == 4 && parts[2] is "attn_output" or "ffn_down")
            {
                int l = int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
                var m = PruneTestSupport.ReadMatrix(fd, t.Name, out int rows, out int cols);
                for (int r = 0; r < rows; r++)
                    for (int j = 0; j < cols; j++)
                        if (parts[2] == "attn_output" ? !keptGroups[l][j / gw] : !keptChannels[l][j]) m[r * cols + j] = 0;
                w.AddTensor(t.Name, GgmlType.F32, t.Dims, System.Runtime.InteropServices.MemoryMarshal.AsBytes(m.AsSpan()).ToArray());
            }
            else w.AddTensor(t.Name, t.Type, t.Dims, fd.TensorBytes(t).ToArray());
        }
        string masked = Path.Combine(dir, "masked.gguf");
        w.Write(masked);
        var a = Logits(outPath);
        var b = Logits(masked);
        Assert.True(PruneTestSupport.MaxRelDiff(a, b, Shape.VocabSize) < 1e-4, $"max rel diff {PruneTestSupport.MaxRelDiff(a, b, Shape.VocabSize)}");
    }

    [Fact]
    public void Rounds_with_training_reach_the_ratio_and_change_the_kept_weights()
    {
        string dir = PruneTestSupport.NewDir();
        string dense = TestModels.Get("gqa-tied", Shape, GgmlType.F32), outPath = Path.Combine(dir, "adapt.gguf");
        var res = Run(dense, outPath, stepsPerRound: 3);
        Assert.Equal(9, res.TrainSteps);
        Assert.InRange(res.Removed, 0.24, 0.36);
        Assert.All(res.Rounds, r => Assert.True(double.IsFinite(r.MeanLoss)));
        Assert.All(res.Rounds, r => Assert.InRange(r.LayerSparsity.Average(), r.Target - 1e-9, r.Target + 1e-9));
        using var fp = GgufFile.Open(outPath);
        Assert.Equal("adapt", fp.GetString("pare.prune.method"));
        Assert.Equal(3L, fp.GetInt("pare.prune.rounds"));
        // Trained: the pruned file's up rows are no longer rows of the dense file.
        using var fd = GgufFile.Open(dense);
        var up = PruneTestSupport.ReadMatrix(fp, "blk.0.ffn_up.weight", out int rows, out int cols);
        var dup = PruneTestSupport.ReadMatrix(fd, "blk.0.ffn_up.weight", out int drows, out _);
        int equal = 0;
        for (int r = 0; r < rows; r++)
            for (int d = 0; d < drows; d++)
                if (up.AsSpan(r * cols, cols).SequenceEqual(dup.AsSpan(d * cols, cols))) equal++;
        Assert.Equal(0, equal);
        Assert.All(Logits(outPath), x => Assert.True(float.IsFinite(x)));
    }

    [Fact]
    public void Adapt_without_training_text_and_finetune_with_missing_text_are_one_line_exit_1_and_no_file()
    {
        string dir = PruneTestSupport.NewDir();
        string dense = TestModels.Get("gqa-tied", Shape, GgmlType.F32);
        var r = PareCli.Run("prune", dense, "--method", "adapt", "--ratio", "0.2", "--calib-random", "-o", Path.Combine(dir, "a.gguf"), "--json");
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.ErrorLines);
        Assert.Contains("--train-text", r.Stderr, StringComparison.Ordinal);
        r = PareCli.Run("prune", dense, "--method", "adapt", "--ratio", "1", "--train-text", Path.Combine(dir, "none.txt"), "-o", Path.Combine(dir, "a.gguf"));
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.ErrorLines);
        r = PareCli.Run("finetune", dense, "--train-text", Path.Combine(dir, "missing.txt"), "--steps", "2", "-o", Path.Combine(dir, "f.gguf"));
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.ErrorLines);
        Assert.Contains("training text not found", r.Stderr, StringComparison.Ordinal);
        r = PareCli.Run("finetune", dense, "--steps", "2", "-o", Path.Combine(dir, "f.gguf"));
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.ErrorLines);
        Assert.Empty(Directory.GetFiles(dir));
    }

    /// <summary>Which blocks of <paramref name="block"/> rows of the dense tensor the pruned tensor kept (in order).</summary>
    static bool[] MatchRows(GgufFile dense, GgufFile pruned, string name, int block)
    {
        var d = PruneTestSupport.ReadMatrix(dense, name, out int rows, out int cols);
        var p = PruneTestSupport.ReadMatrix(pruned, name, out int prow, out _);
        var keep = new bool[rows / block];
        int next = 0;
        for (int b = 0; b < rows / block && next < prow; b++)
            if (d.AsSpan(b * block * cols, block * cols).SequenceEqual(p.AsSpan(next * cols, block * cols))) { keep[b] = true; next += block; }
        Assert.Equal(prow, next);
        return keep;
    }

    static float[] Logits(string path)
    {
        using var m = LlamaModel.Load(path);
        return m.CreateSession(new SessionOptions { Threads = 2 }).ForwardAll(Probe);
    }
}
