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

    [Fact]
    public void A_block_loaded_over_the_previous_one_equals_a_fresh_load()
    {
        var cfg = TestModels.OracleShapes.Single(s => s.Name == "gqa-untied").Config;
        using var model = LlamaModel.Load(TestModels.Get("gqa-untied", cfg, GgmlType.F16));
        var (c, w) = (model.Config, model.Weights);
        var b0 = DenseBlock.Load(c, w.Layers[0], 0);
        var storage = b0.Linears.Select(d => d.Data).ToArray();
        var b1 = DenseBlock.Load(c, w.Layers[1], 1, reuse: b0);
        var fresh = DenseBlock.Load(c, w.Layers[1], 1);
        foreach (var (kept, (reused, expected)) in storage.Zip(b1.Linears.Zip(fresh.Linears)))
        {
            Assert.Same(kept, reused.Data);
            Assert.Equal(expected.Name, reused.Name);
            Assert.Equal(expected.Data, reused.Data);
        }
    }
}
