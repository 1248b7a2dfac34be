using Pare.Models;
using Pare.Tensors;
using Pare.Tests.TestSupport;
using Pare.Tokenizers;

namespace Pare.Tests.Safetensors;

/// <summary>The same model saved as safetensors + config.json + tokenizer.json gives the same logits and ids as its GGUF.</summary>
public class SafetensorsLogitsTests
{
    [Theory]
    [InlineData("mha-untied", GgmlType.F32)]
    [InlineData("gqa-untied", GgmlType.F32)]
    [InlineData("gqa-tied", GgmlType.F16)]
    [InlineData("mha-tied", GgmlType.F32)]
    public void Exported_checkpoint_matches_gguf(string shape, GgmlType type)
    {
        var cfg = TestModels.OracleShapes.Single(s => s.Name == shape).Config;
        string gguf = TestModels.Get(shape, cfg, type);
        string dir = Path.Combine(TestModels.Dir, $"hf-{shape}-{type}");
        using var g = LlamaModel.Load(gguf);
        HfExporter.Export(g.Config, g.Weights, dir);
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), HfTokenizerJson.ToHfJson(TokenizerSpec.FromGguf(g.Gguf!)));

        using var h = LlamaModel.Load(dir);
        Assert.Equal(RopeLayout.HalfSplit, h.Config.RopeLayout);
        Assert.Equal(g.Config.TiedEmbeddings, h.Config.TiedEmbeddings);

        const string text = "the quick brown fox, 1234 times. Ünïcödé!";
        var ids = g.Tokenizer!.Encode(text);
        Assert.Equal(ids, h.Tokenizer!.Encode(text));

        var rng = new Random(5);
        int[] seq = [.. ids, .. Enumerable.Range(0, 20).Select(_ => rng.Next(cfg.VocabSize))];
        var a = g.CreateSession(new SessionOptions { Threads = 2 }).ForwardAll(seq);
        var b = h.CreateSession(new SessionOptions { Threads = 2 }).ForwardAll(seq);
        double maxAbs = a.Max(Math.Abs), maxDiff = a.Zip(b, (x, y) => Math.Abs(x - y)).Max();
        Assert.True(maxDiff <= 1e-5 * maxAbs, $"max |diff| {maxDiff:G4} vs max |logit| {maxAbs:G4}");
    }
}
