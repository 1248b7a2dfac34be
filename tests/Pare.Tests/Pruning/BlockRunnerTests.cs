using Pare.Models;
using Pare.Pruning;
using Pare.Tensors;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Pruning;

public class BlockRunnerTests
{
    [Theory]
    [InlineData("gqa-untied", GgmlType.F32)]
    [InlineData("gqa-tied", GgmlType.F16)]
    [InlineData("qwen2", GgmlType.F32)]
    public void Blocks_one_by_one_then_head_give_the_sessions_logits(string shape, GgmlType type)
    {
        var cfg = shape == "qwen2"
            ? PruneTestSupport.Gqa with { Architecture = "qwen2", QkvBias = true, RopeLayout = RopeLayout.HalfSplit, RopeBase = 1000000f }
            : TestModels.OracleShapes.Single(s => s.Name == shape).Config;
        using var model = LlamaModel.Load(TestModels.Get(shape, cfg, type));
        var c = model.Config;
        var rng = new Random(5);
        int[] tokens = [.. Enumerable.Range(0, 37).Select(_ => rng.Next(c.VocabSize))];
        var expected = model.CreateSession(new SessionOptions { Threads = 2, ContextLength = 64 }).ForwardAll(tokens);

        var x = new float[tokens.Length * c.Dim];
        BlockRunner.Embed(model.Weights, c.Dim, tokens, x);
        var runner = new BlockRunner(c, 2);
        var seen = new HashSet<LinearInput>();
        for (int l = 0; l < c.Layers; l++)
            runner.Forward(DenseBlock.Load(c, model.Weights.Layers[l], l), x, tokens.Length, (input, _, n) => { seen.Add(input); Assert.Equal(tokens.Length, n); });
        var logits = new float[tokens.Length * c.VocabSize];
        BlockRunner.Head(c, model.Weights, x, tokens.Length, logits, 2);
        Assert.Equal(4, seen.Count);
        double diff = PruneTestSupport.MaxRelDiff(expected, logits, c.VocabSize);
        Assert.True(diff < 1e-4, $"max |diff| / max |logit| = {diff:G4}");
    }
}
