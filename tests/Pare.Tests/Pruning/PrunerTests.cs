using Pare.Formats.Gguf;
using Pare.Kernels.Sparse;
using Pare.Models;
using Pare.Pruning;
using Pare.Tensors;
using Pare.Tests.TestSupport;
using Xunit.Abstractions;

namespace Pare.Tests.Pruning;

/// <summary>End to end on random test models: the written GGUF read back, against llama.cpp, and the compact path.</summary>
public class PrunerTests(ITestOutputHelper output)
{
    static string Model(GgmlType type) => TestModels.Get("gqa-untied", PruneTestSupport.Gqa, type);

    public static TheoryData<PruneMethod, string, GgmlType> Cases() => new()
    {
        { PruneMethod.Magnitude, "0.5", GgmlType.F16 },
        { PruneMethod.Magnitude, "2:4", GgmlType.F16 },
        { PruneMethod.Wanda, "0.3", GgmlType.F16 },
        { PruneMethod.Wanda, "4:8", GgmlType.F32 },
        { PruneMethod.SparseGpt, "0.5", GgmlType.F16 },
        { PruneMethod.SparseGpt, "0.7", GgmlType.Q8_0 },
        { PruneMethod.SparseGpt, "2:4", GgmlType.F32 },
        { PruneMethod.Wanda, "0.5", GgmlType.Q8_0 },
    };

    static SparsityPattern P(string s) => s.Contains(':') ? SparsityPattern.Parse(s, 0)
        : SparsityPattern.Unstructured(double.Parse(s, System.Globalization.CultureInfo.InvariantCulture));

    [Theory]
    [MemberData(nameof(Cases))]
    public void Written_file_has_exact_sparsity_and_untouched_other_tensors(PruneMethod method, string pattern, GgmlType type)
    {
        var p = P(pattern);
        string src = Model(type);
        string dst = PruneTestSupport.Pruned(src, PruneTestSupport.Options(method, p));
        using var a = GgufFile.Open(src);
        using var b = GgufFile.Open(dst);
        Assert.Equal(a.Tensors.Select(t => t.Name), b.Tensors.Select(t => t.Name));
        foreach (var t in a.Tensors)
        {
            var u = b.GetTensor(t.Name);
            Assert.Equal(t.Type, u.Type);
            Assert.Equal(t.Dims, u.Dims);
            bool prunable = PruneTestSupport.Linears.Any(l => t.Name.EndsWith($".{l}.weight", StringComparison.Ordinal));
            if (!prunable) { Assert.True(a.TensorBytes(t).SequenceEqual(b.TensorBytes(u)), $"{t.Name} changed"); continue; }
            var w = PruneTestSupport.ReadMatrix(b, t.Name, out int rows, out int cols);
            var zero = w.Select(v => v == 0).ToArray();
            if (p.IsNM) { SparsityAssert.ValidNM(zero, rows, cols, p.N, p.M, exact: true); continue; }
            if (method == PruneMethod.Wanda)
                for (int r = 0; r < rows; r++)
                    Assert.Equal(Masks.Count(p.Ratio, cols), zero.Skip(r * cols).Take(cols).Count(z => z));
            else
                Assert.Equal(Masks.Count(p.Ratio, (long)rows * cols), zero.LongCount(z => z));
        }
        Assert.Equal("llama", b.GetString("general.architecture"));
        Assert.Equal(method.ToString().ToLowerInvariant(), b.GetString("pare.prune.method"));
    }

    [Theory]
    [InlineData(PruneMethod.SparseGpt, GgmlType.F32, 1e-3)]
    [InlineData(PruneMethod.Wanda, GgmlType.F16, 5e-3)]
    [InlineData(PruneMethod.Magnitude, GgmlType.Q8_0, 3e-2)]
    public void Pruned_file_gives_the_same_logits_in_llama_cpp_and_Pare(PruneMethod method, GgmlType type, double tol)
    {
        string dst = PruneTestSupport.Pruned(Model(type), PruneTestSupport.Options(method, SparsityPattern.Unstructured(0.5)));
        using var oracle = new LlamaCppOracle(dst);
        using var model = LlamaModel.Load(dst);
        var rng = new Random(11);
        int[] seq = [.. Enumerable.Range(0, 40).Select(_ => rng.Next(model.Config.VocabSize))];
        var expected = oracle.Logits(seq);
        var actual = model.CreateSession(new SessionOptions { ContextLength = 64, Threads = 2 }).ForwardAll(seq);
        var flat = expected.SelectMany(r => r).ToArray();
        double diff = PruneTestSupport.MaxRelDiff(flat, actual, model.Config.VocabSize);
        output.WriteLine($"{method} {type}: worst max|diff| / max|logit| = {diff:E2}");
        Assert.True(diff <= tol, $"{diff:G4} > {tol}");
    }

    [Theory]
    [InlineData(GgmlType.F32, "0.5")]
    [InlineData(GgmlType.F16, "0.5")]
    [InlineData(GgmlType.F16, "2:4")]
    [InlineData(GgmlType.Q8_0, "0.7")]
    public void Compact_sparse_file_gives_the_dense_files_logits(GgmlType type, string pattern)
    {
        var o = PruneTestSupport.Options(PruneMethod.Wanda, P(pattern));
        string dense = PruneTestSupport.Pruned(Model(type), o);
        string compact = PruneTestSupport.Pruned(Model(type), o, SparseStorage.Bitmask);
        using var md = LlamaModel.Load(dense);
        using var ms = LlamaModel.Load(compact);
        Assert.NotNull(ms.Weights.Layers[0].Wq.Sparse);
        Assert.Equal(type, ms.Weights.Layers[0].Wq.Type);
        Assert.True(new FileInfo(compact).Length < new FileInfo(dense).Length);
        var rng = new Random(12);
        int[] seq = [.. Enumerable.Range(0, 33).Select(_ => rng.Next(md.Config.VocabSize))];
        var opt = new SessionOptions { ContextLength = 64, Threads = 2 };
        // Prefill (all positions at once) and decode (one token at a time) both go through the compact kernels.
        var a = md.CreateSession(opt).ForwardAll(seq);
        var b = ms.CreateSession(opt).ForwardAll(seq);
        double diff = PruneTestSupport.MaxRelDiff(a, b, md.Config.VocabSize);
        var sd = md.CreateSession(opt); var ss = ms.CreateSession(opt);
        double decodeDiff = 0;
        foreach (int t in seq.Take(8))
            decodeDiff = Math.Max(decodeDiff, PruneTestSupport.MaxRelDiff(sd.Forward([t]), ss.Forward([t]), md.Config.VocabSize));
        output.WriteLine($"{type} {pattern}: dense {new FileInfo(dense).Length} B, compact {new FileInfo(compact).Length} B, max rel diff prefill {diff:E2}, decode {decodeDiff:E2}");
        // Dense Q8_0 prefill rounds the activations to 8-bit blocks as llama.cpp does (compact prefill keeps F32): the
        // Q8_0 oracle tolerance. In decode both round them alike and run the same integer dots.
        Assert.True(diff < (type == GgmlType.Q8_0 ? 3e-2 : 1e-4), $"prefill {diff:G4}");
        Assert.True(decodeDiff < 1e-4, $"decode {decodeDiff:G4}");
    }

    [Fact]
    public void Block_zero_reconstruction_error_orders_SparseGPT_then_Wanda_then_magnitude()
    {
        string src = Model(GgmlType.F32);
        var errs = new Dictionary<PruneMethod, IReadOnlyList<LayerReport>>();
        foreach (var m in new[] { PruneMethod.Magnitude, PruneMethod.Wanda, PruneMethod.SparseGpt })
        {
            string dir = PruneTestSupport.NewDir();
            var r = Pruner.Run(src, Path.Combine(dir, "out.gguf"), PruneTestSupport.Options(m, SparsityPattern.Unstructured(0.5), samples: 32, seqLen: 64), new CalibrationSource.RandomTokens());
            errs[m] = [.. r.Layers.Where(l => l.Block == 0)];
            Directory.Delete(dir, true);
        }
        double Sum(PruneMethod m) => errs[m].Sum(l => l.RelativeError!.Value);
        foreach (var l in errs[PruneMethod.Magnitude])
        {
            double mag = l.RelativeError!.Value;
            double wa = errs[PruneMethod.Wanda].Single(x => x.Tensor == l.Tensor).RelativeError!.Value;
            double gpt = errs[PruneMethod.SparseGpt].Single(x => x.Tensor == l.Tensor).RelativeError!.Value;
            output.WriteLine($"{l.Tensor}: magnitude {mag:F4}  wanda {wa:F4}  sparsegpt {gpt:F4}");
            Assert.True(gpt < wa, $"{l.Tensor}: SparseGPT {gpt} >= Wanda {wa}");
        }
        Assert.True(Sum(PruneMethod.Wanda) < Sum(PruneMethod.Magnitude), $"Wanda {Sum(PruneMethod.Wanda)} >= magnitude {Sum(PruneMethod.Magnitude)}");
    }

    [Fact]
    public void Overrides_and_skips_apply_per_tensor()
    {
        var o = PruneTestSupport.Options(PruneMethod.Magnitude, SparsityPattern.Unstructured(0.5), samples: 0) with
        {
            Overrides = [LayerOverride.Parse("blk.0.*=skip"), LayerOverride.Parse("*.ffn_down.weight=0.25")],
        };
        string dir = PruneTestSupport.NewDir();
        string src = Model(GgmlType.F16);
        var r = Pruner.Run(src, Path.Combine(dir, "o.gguf"), o, null);
        Assert.DoesNotContain(r.Layers, l => l.Block == 0);
        Assert.All(r.Layers.Where(l => l.Tensor.EndsWith("ffn_down.weight", StringComparison.Ordinal)), l => Assert.Equal(0.25, l.Sparsity, 3));
        Assert.All(r.Layers.Where(l => l.Tensor.EndsWith("attn_q.weight", StringComparison.Ordinal)), l => Assert.Equal(0.5, l.Sparsity, 3));
        Assert.Null(r.Layers[0].RelativeError); // no calibration: no error report
        using var a = GgufFile.Open(src);
        using var b = GgufFile.Open(Path.Combine(dir, "o.gguf"));
        Assert.True(a.TensorBytes(a.GetTensor("blk.0.attn_q.weight")).SequenceEqual(b.TensorBytes(b.GetTensor("blk.0.attn_q.weight"))));
        Directory.Delete(dir, true);
    }
}
