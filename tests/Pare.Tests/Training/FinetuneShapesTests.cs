using Pare.Formats.Gguf;
using Pare.Models;
using Pare.Pruning;
using Pare.Pruning.Structured;
using Pare.Tests.Pruning;
using Pare.Tests.TestSupport;
using Pare.Tensors;
using Pare.Training;

namespace Pare.Tests.Training;

/// <summary>
/// The trainer on the shapes structured pruning writes: per-layer heads / KV heads / FFN widths (adaptive FLAP, CFSP:
/// <c>deci</c> files) and SliceGPT's sliced residual stream (shortcut matrices, norms dividing by the original width).
/// The gradients against finite differences, the trainer's forward pass against the inference engine on real pruned
/// files, and recovery fine-tuning of those files (the loss falls, the written file keeps the shapes and runs).
/// </summary>
public class FinetuneShapesTests
{
    static LlamaConfig Tiny(bool sliced) => new()
    {
        Dim = 16, Layers = 2, Heads = 4, KvHeads = 2, HeadDim = 4, RopeDim = 4, FfnDim = 24, VocabSize = 40, ContextLength = 6,
        RopeBase = 10000f, RmsEps = 1e-5f, TiedEmbeddings = false,
        LayerHeads = sliced ? null : [4, 2], LayerKvHeads = sliced ? null : [2, 1], LayerFfn = sliced ? null : [24, 10],
        NormWidth = sliced ? 24 : null,
    };

    [Theory]
    [InlineData(false)] // per-layer shapes
    [InlineData(true)]  // SliceGPT: shortcuts and the norms' original width
    public void Gradients_of_per_layer_and_sliced_shapes_match_finite_differences(bool sliced)
    {
        var c = Tiny(sliced);
        var p = new ParameterStore(c);
        Assert.Equal(sliced ? 2 * c.Layers * c.Dim * c.Dim : 0, p.Layers.Sum(l => (l.AttnShortcut?.Length ?? 0) + (l.FfnShortcut?.Length ?? 0)));
        if (!sliced) Assert.Equal([2 * 4, 1 * 4, 10], new[] { p.Layers[1].Wq.Rows, p.Layers[1].Wk.Rows, p.Layers[1].Down.Cols });
        p.Initialize(7, 0.5f);
        GradCheck.WholeModel(p);
    }

    static readonly int[] Window = [.. Enumerable.Range(0, 40).Select(i => (i * 37 + 11) % 512)];

    static string PrunedFile(string kind, string dir)
    {
        var dense = TestModels.Get("gqa-untied", PruneTestSupport.Gqa, GgmlType.F32);
        string path = Path.Combine(dir, kind + ".gguf");
        if (kind == "slicegpt")
            SliceGpt.Run(dense, path, new SliceGptOptions { Slicing = 0.25, Samples = 8, SeqLen = 32, Seed = 1, Threads = 2 }, new CalibrationSource.RandomTokens());
        else
            StructuredPruner.Run(dense, path, new StructuredOptions { Method = StructuredOptions.Parse(kind), Ratio = 0.4, Samples = 8, SeqLen = 32, Seed = 1, Threads = 2 },
                new CalibrationSource.RandomTokens());
        return path;
    }

    static float[] EngineLogits(string path)
    {
        using var m = LlamaModel.Load(path);
        return m.CreateSession(new SessionOptions { Threads = 2 }).ForwardAll(Window);
    }

    [Theory]
    [InlineData("flap", false)]      // deci: per-layer widths, FLAP's output biases
    [InlineData("cfsp", false)]      // deci: per-layer FFN widths
    [InlineData("slicegpt", false)]  // sliced residual stream, shortcuts frozen (the default)
    [InlineData("slicegpt", true)]   // shortcuts trained too
    public void Structured_files_train_with_the_engines_forward_pass_and_keep_their_shapes(string kind, bool trainShortcuts)
    {
        string dir = PruneTestSupport.NewDir(), pruned = PrunedFile(kind, dir);
        LlamaConfig before;
        using (var m = LlamaModel.Load(pruned)) before = m.Config;
        Assert.True(kind == "slicegpt" ? before.Sliced : !before.IsUniform, $"{kind} gave a uniform, unsliced model");

        var tokens = Enumerable.Range(0, 4000).Select(i => (i * 37 + 11 + i / 97) % 512).ToArray();
        var ft = new Finetune(pruned, tokens, new FinetuneOptions { Steps = 6, LearningRate = 3e-3f, BatchSize = 1, SeqLen = 40, WarmupSteps = 1, Threads = 2, TrainShortcuts = trainShortcuts });
        // The trainer's forward pass computes the engine's logits on the pruned file.
        ft.Model.Forward(Window);
        Assert.True(PruneTestSupport.MaxRelDiff(EngineLogits(pruned), ft.Model.Logits(Window.Length).ToArray(), before.VocabSize) < 1e-4);

        int[] inputs = tokens.AsSpan(100, 40).ToArray(), targets = tokens.AsSpan(101, 40).ToArray();
        double lossBefore = ft.Model.Step(inputs, targets, 0f) / 40;
        string outPath = Path.Combine(dir, kind + "-ft.gguf");
        ft.Run(outPath);
        double lossAfter = ft.Model.Step(inputs, targets, 0f) / 40;
        Assert.True(lossAfter < lossBefore - 0.05, $"loss {lossBefore:F4} -> {lossAfter:F4}");

        // Same shapes, and the engine runs the written file with the trained model's logits.
        using (var m = LlamaModel.Load(outPath))
        {
            var after = m.Config;
            Assert.Equal(before.LayerHeads, after.LayerHeads);
            Assert.Equal(before.LayerKvHeads, after.LayerKvHeads);
            Assert.Equal(before.LayerFfn, after.LayerFfn);
            Assert.Equal(before.Dim, after.Dim);
            Assert.Equal(before.NormWidth, after.NormWidth);
        }
        ft.Model.Forward(Window);
        Assert.True(PruneTestSupport.MaxRelDiff(EngineLogits(outPath), ft.Model.Logits(Window.Length).ToArray(), before.VocabSize) < 1e-4);
        using var fin = GgufFile.Open(pruned);
        using var fout = GgufFile.Open(outPath);
        Assert.Equal(fin.Tensors.Select(t => (t.Name, string.Join(",", t.Dims))), fout.Tensors.Select(t => (t.Name, string.Join(",", t.Dims))));
        if (kind == "slicegpt")
            foreach (var name in new[] { "blk.0.attn_shortcut.weight", "blk.1.ffn_shortcut.weight" })
            {
                float[] s0 = PruneTestSupport.ReadMatrix(fin, name, out _, out _), s1 = PruneTestSupport.ReadMatrix(fout, name, out _, out _);
                if (trainShortcuts) Assert.NotEqual(s0, s1); else Assert.Equal(s0, s1);
            }
    }
}
