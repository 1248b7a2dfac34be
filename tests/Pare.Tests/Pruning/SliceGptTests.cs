using Pare.Formats.Gguf;
using Pare.Models;
using Pare.Pruning;
using Pare.Pruning.Structured;
using Pare.Tensors;
using Pare.Tests.TestSupport;
using Xunit.Abstractions;

namespace Pare.Tests.Pruning;

/// <summary>
/// SliceGPT: the Jacobi eigen solver against known decompositions; slicing 0 (rotation only, norms folded) computes the
/// dense model's logits; a sliced file round-trips (architecture, widths, shortcut tensors, parameter count); bad input
/// is refused before anything is written; HF export is refused.
/// </summary>
public class SliceGptTests(ITestOutputHelper output)
{
    static readonly int[] Tokens = [.. Enumerable.Range(0, 40).Select(i => (i * 37 + 11) % 512)];

    static float[] Logits(string path)
    {
        using var m = LlamaModel.Load(path);
        return m.CreateSession(new SessionOptions { Threads = 2 }).ForwardAll(Tokens);
    }

    static SliceGptResult Slice(string model, double s, string dir, string name) =>
        SliceGpt.Run(model, Path.Combine(dir, name + ".gguf"), new SliceGptOptions { Slicing = s, Samples = 8, SeqLen = 32, Seed = 1, Threads = 2 },
            new CalibrationSource.RandomTokens());

    [Fact]
    public void Eigen_solver_recovers_a_known_2x2_decomposition()
    {
        var (values, vectors) = SymmetricEigen.Decompose([2, 1, 1, 2], 2);
        Assert.Equal(3, values[0], 12);
        Assert.Equal(1, values[1], 12);
        double r = Math.Sqrt(0.5);
        // Column 0 = ±(1, 1)/√2, column 1 = ±(1, -1)/√2.
        Assert.Equal(r, Math.Abs(vectors[0]), 12); Assert.Equal(r, Math.Abs(vectors[2]), 12);
        Assert.Equal(vectors[0], vectors[2], 12);
        Assert.Equal(vectors[1], -vectors[3], 12);
    }

    [Fact]
    public void Eigen_solver_recovers_a_built_decomposition()
    {
        // A = V diag(λ) Vᵀ with V a Householder reflection I - 2uuᵀ (orthogonal) and distinct known eigenvalues.
        const int n = 40;
        var rng = new Random(3);
        var u = Enumerable.Range(0, n).Select(_ => rng.NextDouble() - 0.5).ToArray();
        double norm = Math.Sqrt(u.Sum(x => x * x));
        for (int i = 0; i < n; i++) u[i] /= norm;
        var v = new double[n * n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) v[i * n + j] = (i == j ? 1 : 0) - 2 * u[i] * u[j];
        double[] lambda = [.. Enumerable.Range(0, n).Select(i => 100.0 / (i + 1) - 0.5 * i)]; // descending, some negative
        var a = new double[n * n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) for (int k = 0; k < n; k++) a[i * n + j] += v[i * n + k] * lambda[k] * v[j * n + k];
        var (values, vectors) = SymmetricEigen.Decompose(a, n);
        for (int k = 0; k < n; k++)
        {
            Assert.Equal(lambda[k], values[k], 9);
            // The eigenvector equals V's column k up to sign.
            double dot = 0;
            for (int i = 0; i < n; i++) dot += vectors[i * n + k] * v[i * n + k];
            Assert.Equal(1, Math.Abs(dot), 9);
        }
    }

    [Theory]
    [InlineData("gqa-untied")]
    [InlineData("gqa-tied")]
    public void Slicing_0_rotates_only_and_gives_the_dense_logits(string shape)
    {
        var cfg = TestModels.OracleShapes.Single(s => s.Name == shape).Config;
        string dense = TestModels.Get(shape, cfg, GgmlType.F32), dir = PruneTestSupport.NewDir();
        var res = Slice(dense, 0, dir, "s0");
        Assert.Equal(cfg.Dim, res.SlicedDim);
        double diff = PruneTestSupport.MaxRelDiff(Logits(dense), Logits(res.Output), cfg.VocabSize);
        output.WriteLine($"{shape}: slicing 0, max relative logit difference to dense {diff:E2}");
        Assert.True(diff < 1e-4, $"max relative difference {diff}");
    }

    [Fact]
    public void Sliced_file_round_trips_with_its_widths_and_shortcuts()
    {
        var cfg = TestModels.OracleShapes.Single(s => s.Name == "mha-untied").Config;
        string dense = TestModels.Get("mha-untied", cfg, GgmlType.F32), dir = PruneTestSupport.NewDir();
        var res = Slice(dense, 0.25, dir, "s25");
        Assert.Equal(48, res.SlicedDim); // 0.75 x 64, a multiple of 8
        using (var f = GgufFile.Open(res.Output))
        {
            Assert.Equal("slicegpt", f.GetString("general.architecture"));
            Assert.Equal(48, f.GetInt("slicegpt.embedding_length"));
            Assert.Equal(64, f.GetInt("slicegpt.rms_norm_width"));
            for (int l = 0; l < cfg.Layers; l++)
                foreach (var s in new[] { "attn_shortcut", "ffn_shortcut" })
                    Assert.Equal([48L, 48L], f.GetTensor($"blk.{l}.{s}.weight").Dims);
            Assert.Equal(res.ParamsAfter, f.Tensors.Sum(t => t.ElementCount));
        }
        using var m = LlamaModel.Load(res.Output);
        Assert.True(m.Config.Sliced);
        Assert.Equal(48, m.Config.Dim);
        Assert.Equal(64, m.Config.NormWidth);
        Assert.Equal(res.ParamsAfter, m.ParameterCount); // shortcuts counted
        Assert.All(m.Weights.Layers, lw => { Assert.NotNull(lw.AttnShortcut); Assert.NotNull(lw.FfnShortcut); });
        var logits = Logits(res.Output);
        Assert.All(logits, x => Assert.True(float.IsFinite(x)));
        // Deleting a quarter of the width changes the function, but not into noise: the dense model's top token mostly survives.
        var d = Logits(dense);
        int v = cfg.VocabSize, agree = 0;
        for (int p = 0; p < Tokens.Length; p++)
            if (ArgMax(d.AsSpan(p * v, v)) == ArgMax(logits.AsSpan(p * v, v))) agree++;
        output.WriteLine($"slicing 0.25: removed {res.Removed:P1} of all parameters; top-1 agreement with dense {agree}/{Tokens.Length}");
        Assert.True(res.BlockRemoved > 0.05);
        var e = Assert.Throws<PareException>(() => HfExporter.Export(m.Config, m.Weights, Path.Combine(dir, "hf")));
        Assert.Contains("SliceGPT", e.Message, StringComparison.Ordinal);
        Assert.Throws<PareException>(() => Slice(res.Output, 0.1, dir, "again"));
    }

    static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }

    [Theory]
    [InlineData("1", "--slicing")]
    [InlineData("-0.1", "--slicing")]
    public void Slicing_outside_0_1_is_one_line_exit_1_and_no_file(string slicing, string expected)
    {
        var cfg = TestModels.OracleShapes.Single(s => s.Name == "mha-tied").Config;
        string dir = PruneTestSupport.NewDir(), outPath = Path.Combine(dir, "out.gguf");
        PruneTestSupport.RefusedWithoutFile(dir, expected, "prune", TestModels.Get("mha-tied", cfg, GgmlType.F32), "--method", "slicegpt", "--slicing", slicing,
            "--calib-random", "--samples", "2", "--seqlen", "8", "-o", outPath, "--json");
    }

    [Fact]
    public void A_model_without_RMSNorm_is_one_line_exit_1_and_no_file()
    {
        string dir = PruneTestSupport.NewDir(), model = Path.Combine(dir, "bert.gguf"), outPath = Path.Combine(dir, "out.gguf");
        new GgufWriter().Set("general.architecture", "bert").Set("bert.embedding_length", 8u)
            .AddTensor("token_embd.weight", GgmlType.F32, [8, 4], new byte[8 * 4 * 4]).Write(model);
        var r = PareCli.Run("prune", model, "--method", "slicegpt", "--slicing", "0.2", "--calib-random", "--samples", "2", "--seqlen", "8", "-o", outPath);
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.ErrorLines);
        Assert.Contains("RMSNorm", r.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(outPath));
    }
}
