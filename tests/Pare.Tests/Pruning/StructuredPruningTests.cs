using Pare.Formats.Gguf;
using Pare.Models;
using Pare.Pruning;
using Pare.Pruning.Structured;
using Pare.Tensors;
using Pare.Tests.TestSupport;
using Xunit.Abstractions;

namespace Pare.Tests.Pruning;

/// <summary>
/// Structured pruning (FLAP, Wanda-sp, magnitude-sp): the files are smaller dense models that llama.cpp and Pare run
/// with the same logits; a pruned model equals the dense model with the removed heads' and channels' output columns
/// zeroed plus the compensation biases (so the slicing is right, not only self-consistent); bad input is refused
/// before anything is written.
/// </summary>
public class StructuredPruningTests(ITestOutputHelper output)
{
    static readonly LlamaConfig Mha = TestModels.OracleShapes.Single(s => s.Name == "mha-untied").Config;
    static readonly int[] Tokens = [.. Enumerable.Range(0, 40).Select(i => (i * 37 + 11) % 512)];

    static string Prune(string model, StructuredMethod m, double ratio, string dir, string name)
    {
        string path = Path.Combine(dir, name + ".gguf");
        StructuredPruner.Run(model, path, new StructuredOptions { Method = m, Ratio = ratio, Samples = 8, SeqLen = 32, Seed = 1, Threads = 2 },
            new CalibrationSource.RandomTokens());
        return path;
    }

    static float[] PareLogits(string path)
    {
        using var m = LlamaModel.Load(path);
        return m.CreateSession(new SessionOptions { Threads = 2 }).ForwardAll(Tokens);
    }

    static float[] LlamaCppLogits(string path)
    {
        using var o = new LlamaCppOracle(path);
        return [.. o.Logits(Tokens).SelectMany(r => r)];
    }

    [Theory]
    [InlineData("mha-untied", StructuredMethod.FlapUniform)]
    [InlineData("gqa-untied", StructuredMethod.FlapUniform)]
    [InlineData("gqa-tied", StructuredMethod.WandaSp)]
    [InlineData("mha-untied", StructuredMethod.MagnitudeSp)]
    public void Uniform_result_is_a_smaller_llama_file_that_llama_cpp_runs_with_the_same_logits(string shape, StructuredMethod method)
    {
        var cfg = TestModels.OracleShapes.Single(s => s.Name == shape).Config;
        string dir = PruneTestSupport.NewDir();
        string path = Prune(TestModels.Get(shape, cfg, GgmlType.F32), method, 0.3, dir, "u");
        using (var f = GgufFile.Open(path))
        {
            Assert.Equal("llama", f.GetString("general.architecture"));
            Assert.True(f.GetInt("llama.feed_forward_length") < cfg.FfnDim);
            Assert.True(f.GetInt("llama.attention.head_count_kv") < cfg.KvHeads);
            Assert.Equal(method == StructuredMethod.FlapUniform, f.TryGetTensor("blk.0.ffn_down.bias", out _));
        }
        double diff = PruneTestSupport.MaxRelDiff(PareLogits(path), LlamaCppLogits(path), cfg.VocabSize);
        output.WriteLine($"{shape} {method}: max relative logit difference {diff:E2}");
        Assert.True(diff < 1e-3, $"Pare and llama.cpp differ by {diff}");
    }

    [Fact]
    public void Adaptive_flap_writes_deci_with_per_layer_arrays_and_equals_the_masked_dense_model()
    {
        string dir = PruneTestSupport.NewDir();
        string dense = TestModels.Get("mha-untied", Mha, GgmlType.F32);
        string path = Prune(dense, StructuredMethod.Flap, 0.4, dir, "flap");
        using var f = GgufFile.Open(path);
        Assert.Equal("deci", f.GetString("general.architecture"));
        var heads = f.GetArray<int>("deci.attention.head_count")!;
        var ffn = f.GetArray<int>("deci.feed_forward_length")!;
        output.WriteLine($"heads {string.Join(",", heads)}, ffn {string.Join(",", ffn)}");
        Assert.Equal(Mha.Layers, heads.Length);
        Assert.True(heads.Distinct().Count() > 1 || ffn.Distinct().Count() > 1, "adaptive FLAP should give different widths per layer");
        Assert.Equal(Mha.HeadDim, (int)f.RequireInt("deci.attention.key_length"));

        // The same function written the long way: the dense model with the removed structures' output columns zeroed
        // and the compensation biases added (an arch-llama file, which llama.cpp runs too).
        string masked = Path.Combine(dir, "masked.gguf");
        WriteMasked(dense, f, masked);
        var pruned = PareLogits(path);
        double self = PruneTestSupport.MaxRelDiff(pruned, PareLogits(masked), Mha.VocabSize);
        double cpp = PruneTestSupport.MaxRelDiff(pruned, LlamaCppLogits(masked), Mha.VocabSize);
        output.WriteLine($"deci vs masked dense (Pare) {self:E2}, vs masked dense (llama.cpp) {cpp:E2}");
        Assert.True(self < 1e-4, $"pruned and masked models differ by {self}");
        double fromDense = PruneTestSupport.MaxRelDiff(pruned, PareLogits(dense), Mha.VocabSize);
        Assert.True(fromDense > 1e-3, $"the pruned model should differ from the dense one (max relative difference {fromDense})");
        Assert.True(cpp < 1e-3, $"Pare's deci logits and llama.cpp's masked-model logits differ by {cpp}");
    }

    /// <summary>
    /// llama.cpp (LLamaSharp 0.30.0) loads the deci file and agrees with Pare; if this build could not load deci the
    /// test would fail with llama.cpp's error.
    /// </summary>
    [Theory]
    [InlineData(StructuredMethod.Flap)]
    [InlineData(StructuredMethod.Cfsp)]
    public void Llama_cpp_runs_the_deci_file_with_the_same_logits(StructuredMethod method)
    {
        string dir = PruneTestSupport.NewDir();
        var cfg = TestModels.OracleShapes.Single(s => s.Name == "gqa-untied").Config;
        string path = Prune(TestModels.Get("gqa-untied", cfg, GgmlType.F32), method, 0.4, dir, "deci-gqa");
        using (var f = GgufFile.Open(path)) Assert.Equal("deci", f.GetString("general.architecture"));
        double diff = PruneTestSupport.MaxRelDiff(PareLogits(path), LlamaCppLogits(path), cfg.VocabSize);
        output.WriteLine($"deci: max relative logit difference {diff:E2}");
        Assert.True(diff < 1e-3, $"Pare and llama.cpp differ by {diff}");
    }

    [Fact]
    public void Removed_fraction_follows_the_ratio()
    {
        string dir = PruneTestSupport.NewDir();
        var cfg = TestModels.OracleShapes.Single(s => s.Name == "gqa-tied").Config;
        string dense = TestModels.Get("gqa-tied", cfg, GgmlType.F32);
        foreach (var (m, r) in new[] { (StructuredMethod.Flap, 0.2), (StructuredMethod.Flap, 0.5), (StructuredMethod.WandaSp, 0.3), (StructuredMethod.Cfsp, 0.3) })
        {
            var res = StructuredPruner.Run(dense, Path.Combine(dir, $"r{m}{r}.gguf"), new StructuredOptions { Method = m, Ratio = r, Samples = 4, SeqLen = 16, Threads = 2 },
                new CalibrationSource.RandomTokens());
            output.WriteLine($"{m} {r}: removed {res.Removed:F3}");
            Assert.InRange(res.Removed, r - 0.05, r + 0.05);
            using var model = LlamaModel.Load(res.Output);
            long blockParams = Enumerable.Range(0, cfg.Layers).Sum(l => (long)cfg.Dim * (2L * model.Config.QDimAt(l) + 2L * model.Config.KvDimAt(l) + 3L * model.Config.FfnAt(l)));
            Assert.Equal(res.BlockParamsAfter, blockParams);
        }
    }

    [Theory]
    [InlineData("1", "--ratio")]
    [InlineData("-0.1", "--ratio")]
    [InlineData("0.8", "every head")] // mha-tied has 2 heads: a uniform 80% keeps none
    public void Bad_input_is_one_line_exit_1_and_no_file(string ratio, string expected)
    {
        string dir = PruneTestSupport.NewDir();
        var cfg = TestModels.OracleShapes.Single(s => s.Name == "mha-tied").Config;
        string outPath = Path.Combine(dir, "out.gguf");
        PruneTestSupport.RefusedWithoutFile(dir, expected, "prune", TestModels.Get("mha-tied", cfg, GgmlType.F32), "--method", "flap-uniform", "--ratio", ratio,
            "--calib-random", "--samples", "2", "--seqlen", "8", "-o", outPath, "--json");
    }

    [Fact]
    public void Already_pruned_or_unknown_method_is_refused()
    {
        string dir = PruneTestSupport.NewDir();
        string pruned = Prune(TestModels.Get("mha-untied", Mha, GgmlType.F32), StructuredMethod.Flap, 0.4, dir, "p");
        var e = Assert.Throws<PareException>(() => Prune(pruned, StructuredMethod.Flap, 0.2, dir, "again"));
        Assert.Contains("already structurally pruned", e.Message, StringComparison.Ordinal);
        var u = Assert.Throws<PareException>(() => Pruner.Run(pruned, Path.Combine(dir, "u.gguf"), new PruneOptions { Method = PruneMethod.Magnitude, Samples = 0 }, null));
        Assert.Contains("structurally pruned", u.Message, StringComparison.Ordinal);
        Assert.Throws<PareException>(() => StructuredOptions.Parse("flap-x"));
        Assert.False(File.Exists(Path.Combine(dir, "again.gguf")));
    }

    /// <summary>Dense copy of <paramref name="dense"/> whose attn_output / ffn_down columns not kept in <paramref name="pruned"/>
    /// are zero, with the pruned file's biases: the kept columns are found by matching the pruned file's columns.</summary>
    static void WriteMasked(string dense, GgufFile pruned, string dst)
    {
        using var f = GgufFile.Open(dense);
        var w = new GgufWriter { Alignment = f.Alignment };
        foreach (var (k, v) in f.MetadataList) w.Set(k, v);
        foreach (var t in f.Tensors)
        {
            var parts = t.Name.Split('.');
            if (parts.Length == 4 && parts[2] is "attn_output" or "ffn_down")
            {
                var d = PruneTestSupport.ReadMatrix(f, t.Name, out int rows, out int cols);
                var p = PruneTestSupport.ReadMatrix(pruned, t.Name, out _, out int keptCols);
                // Kept columns appear in order: match each pruned column to the next equal dense column.
                var keep = new bool[cols];
                int j = 0;
                for (int pc = 0; pc < keptCols; pc++)
                {
                    while (Enumerable.Range(0, rows).Any(r => d[r * cols + j] != p[r * keptCols + pc])) j++;
                    keep[j++] = true;
                }
                for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++) if (!keep[c]) d[r * cols + c] = 0;
                w.AddTensor(t.Name, GgmlType.F32, t.Dims, System.Runtime.InteropServices.MemoryMarshal.AsBytes(d.AsSpan()).ToArray());
                string bias = $"{parts[0]}.{parts[1]}.{parts[2]}.bias";
                if (pruned.TryGetTensor(bias, out var b)) w.AddTensor(bias, GgmlType.F32, b.Dims, pruned.TensorBytes(b).ToArray());
            }
            else w.AddTensor(t.Name, t.Type, t.Dims, f.TensorBytes(t).ToArray());
        }
        w.Write(dst);
    }
}
