using Pare.Models;
using Pare.Tensors;
using Pare.Tests.TestSupport;
using Xunit.Abstractions;

namespace Pare.Tests.Models;

/// <summary>
/// Pare's logits against llama.cpp's on the same GGUF file: random-weight models in four shapes, several token sequences.
/// Tolerances are relative to the largest |logit| of the position (see docs/engine.md):
/// F32 1e-3 (the bound); F16 and the llama.cpp-quantized copies are looser because llama.cpp rounds
/// activations (to F16 for F16 weights, to 8-bit blocks for quantized weights) where Pare keeps F32.
/// </summary>
public class OracleLogitsTests(ITestOutputHelper output)
{
    public static TheoryData<string> Shapes() => [.. TestModels.OracleShapes.Select(s => s.Name)];

    static readonly int[][] Sequences = MakeSequences();

    static int[][] MakeSequences()
    {
        var rng = new Random(1234);
        return [.. new[] { 1, 5, 17, 64 }.Select(n => Enumerable.Range(0, n).Select(_ => rng.Next(0, 512)).ToArray())];
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void F32_matches_llama_cpp(string shape) => Compare(TestModels.Get(shape, ConfigOf(shape), GgmlType.F32), 1e-3);

    [Theory]
    [MemberData(nameof(Shapes))]
    public void F16_matches_llama_cpp(string shape) => Compare(TestModels.Get(shape, ConfigOf(shape), GgmlType.F16), 5e-3);

    /// <summary>A Q8_0 file written by Pare's own writer and quantizer loads in llama.cpp and gives the same logits.</summary>
    [Theory]
    [InlineData("gqa-untied")]
    [InlineData("mha-tied")]
    public void Pare_written_Q8_0_matches_llama_cpp(string shape) => Compare(TestModels.Get(shape, ConfigOf(shape), GgmlType.Q8_0), 3e-2);

    /// <summary>Qwen2: q/k/v biases and half-split ("neox") RoPE.</summary>
    [Theory]
    [InlineData(GgmlType.F32, 1e-3)]
    [InlineData(GgmlType.F16, 5e-3)]
    public void Qwen2_matches_llama_cpp(GgmlType type, double tol)
    {
        var cfg = ConfigOf("gqa-untied") with { Architecture = "qwen2", QkvBias = true, RopeLayout = RopeLayout.HalfSplit, RopeBase = 1000000f };
        Compare(TestModels.Get("qwen2", cfg, type), tol);
    }

    [Theory]
    [InlineData("gqa-untied", "Q8_0", 3e-2)]
    [InlineData("gqa-untied", "Q4_0", 6e-2)]
    [InlineData("gqa-untied", "Q4_K_M", 6e-2)]
    [InlineData("mha-tied", "Q8_0", 3e-2)]
    [InlineData("mha-tied", "Q4_K_M", 6e-2)]
    public void Llama_cpp_quantized_copies_match(string shape, string ftype, double tol)
    {
        // K-quants need rows of 256: use a wider model for them.
        var cfg = ftype.StartsWith("Q4_K", StringComparison.Ordinal) ? ConfigOf(shape) with { Dim = 256, HeadDim = 256 / ConfigOf(shape).Heads, RopeDim = 256 / ConfigOf(shape).Heads, FfnDim = 512 } : ConfigOf(shape);
        string src = TestModels.Get(shape + (cfg.Dim == 256 ? "-w256" : ""), cfg, GgmlType.F32);
        string dst = Path.Combine(TestModels.Dir, $"{Path.GetFileNameWithoutExtension(src)}-{ftype}.gguf");
        if (!File.Exists(dst)) LlamaCppOracle.Quantize(src, dst, ftype);
        using (var m = LlamaModel.Load(dst))
        {
            // The copy really is quantized (not silently kept in F32).
            Assert.Contains(m.Weights.Layers[0].Wq.Type, new[] { GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q6_K });
        }
        Compare(dst, tol);
    }

    static LlamaConfig ConfigOf(string shape) => TestModels.OracleShapes.Single(s => s.Name == shape).Config;

    void Compare(string path, double relTol)
    {
        using var oracle = new LlamaCppOracle(path);
        using var model = LlamaModel.Load(path);
        double worst = 0;
        foreach (var seq in Sequences)
        {
            var expected = oracle.Logits(seq);
            var session = model.CreateSession(new SessionOptions { ContextLength = 256, Threads = 2 });
            var actual = session.ForwardAll(seq);
            int v = model.Config.VocabSize;
            for (int p = 0; p < seq.Length; p++)
            {
                var e = expected[p];
                double maxAbs = e.Max(Math.Abs), maxDiff = 0;
                for (int i = 0; i < v; i++) maxDiff = Math.Max(maxDiff, Math.Abs(e[i] - actual[(long)p * v + i]));
                worst = Math.Max(worst, maxDiff / maxAbs);
                Assert.True(maxDiff <= relTol * maxAbs,
                    $"{Path.GetFileName(path)} len {seq.Length} pos {p}: max |diff| {maxDiff:G4} > {relTol} x max |logit| {maxAbs:G4}");
            }
        }
        output.WriteLine($"{Path.GetFileName(path)}: worst max|diff| / max|logit| = {worst:E2} (tolerance {relTol:E0})");
    }
}
