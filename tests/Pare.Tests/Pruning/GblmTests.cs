using Pare.Formats.Gguf;
using Pare.Models;
using Pare.Pruning;
using Pare.Tests.TestSupport;
using Pare.Tests.Training;
using Pare.Tensors;
using Pare.Training;

namespace Pare.Tests.Pruning;

/// <summary>GBLM-Pruner: the per-sample gradient l2 norms against finite differences, the score against a hand computation, the pruned file.</summary>
public class GblmTests
{
    static ParameterStore TinyStore()
    {
        var c = TestModels.Cfg(dim: 16, layers: 2, heads: 4, kvHeads: 2, ffn: 24, tied: false, vocab: 40, ctx: 8);
        var p = new ParameterStore(c);
        p.Initialize(7, 0.5f);
        foreach (var info in p.All.Where(i => !i.Decay)) GradCheck.Random(info.Cols, info.Name.Length).Select(v => 1 + 0.3f * v).ToArray().CopyTo(p.Value(info));
        return p;
    }

    [Fact]
    public void Gradient_norms_match_finite_differences_of_the_per_window_losses()
    {
        var p = TinyStore();
        var r = new Random(4);
        int[][] windows = [.. Enumerable.Range(0, 3).Select(_ => Enumerable.Range(0, 7).Select(_ => r.Next(40)).ToArray())];
        const float scale = 100f;
        var g = Gblm.Gradients(p, windows, scale, threads: 2);
        var model = new TrainingModel(p, 1, 6, 2);
        double Loss(int s) => model.Step(windows[s].AsSpan(0, 6), windows[s].AsSpan(1, 6), 0f) / 6;
        var rng = new Random(9);
        int checkedCount = 0;
        foreach (var l in p.Layers)
            foreach (var m in new[] { l.Wq, l.Wk, l.Wv, l.Wo, l.Gate, l.Up, l.Down })
            {
                var G = g[m.Name];
                Assert.Equal(m.Length, G.Length);
                for (int c = 0; c < 6; c++)
                {
                    int i = rng.Next((int)m.Length);
                    long at = m.Offset + i;
                    double sum = 0;
                    for (int s = 0; s < windows.Length; s++)
                    {
                        float saved = p.Values[at];
                        const float eps = 1e-2f;
                        p.Values[at] = saved + eps; double lp = Loss(s);
                        p.Values[at] = saved - eps; double lm = Loss(s);
                        p.Values[at] = saved;
                        double num = scale * (lp - lm) / (2 * eps);
                        sum += num * num;
                    }
                    double expected = Math.Sqrt(sum);
                    Assert.True(Math.Abs(expected - G[i]) <= 0.05 + 0.03 * expected, $"{m.Name}[{i}]: G {G[i]:G6}, finite differences {expected:G6}");
                    checkedCount++;
                }
            }
        Assert.Equal(2 * 7 * 6, checkedCount);
    }

    [Fact]
    public void Score_is_weight_times_input_norm_plus_weight_times_gradient_and_changes_the_mask()
    {
        // Hand computation: |w|·||x|| + |w|·G.
        Assert.Equal(1f * 2f + 1f * 0.5f, Gblm.Score(-1f, 2f, 0.5f));
        Assert.Equal(0f, Gblm.Score(0f, 5f, 7f));
        float[] w = [1f, -2f, 0.5f, 3f];
        double[] xsq = [4, 0.81, 9, 1];           // ||x|| = 2, 0.9, 3, 1
        float[] G = [0f, 1f, 2f, 0f];
        // Wanda scores 2, 1.8, 1.5, 3 -> prunes columns 1 and 2.
        // GBLM scores 2, 1.8 + 2 = 3.8, 1.5 + 1 = 2.5, 3 -> prunes columns 0 and 2.
        var wanda = (float[])w.Clone(); var pw = new bool[4];
        Wanda.Prune(wanda, 1, 4, xsq, SparsityPattern.Unstructured(0.5), pw);
        Assert.Equal([false, true, true, false], pw);
        foreach (var pattern in new[] { SparsityPattern.Unstructured(0.5), SparsityPattern.Parse("2:4", 0.5) })
        {
            var gb = (float[])w.Clone(); var pg = new bool[4];
            Gblm.Prune(gb, 1, 4, xsq, G, pattern, pg);
            Assert.Equal([true, false, true, false], pg);
            Assert.Equal([0f, -2f, 0f, 3f], gb);
        }
    }

    [Fact]
    public void Pruned_file_has_the_sparsity_in_every_row_and_differs_from_wanda()
    {
        var model = TestModels.Get("gqa-untied", PruneTestSupport.Gqa, GgmlType.F32);
        var o = PruneTestSupport.Options(PruneMethod.Gblm, SparsityPattern.Unstructured(0.5), samples: 8, seqLen: 32);
        var gblm = PruneTestSupport.Pruned(model, o);
        var wanda = PruneTestSupport.Pruned(model, o with { Method = PruneMethod.Wanda });
        using var fg = GgufFile.Open(gblm);
        using var fw = GgufFile.Open(wanda);
        Assert.Equal("gblm", fg.GetString("pare.prune.method"));
        long differ = 0;
        foreach (var l in PruneTestSupport.Linears)
        {
            var a = PruneTestSupport.ReadMatrix(fg, $"blk.1.{l}.weight", out int rows, out int cols);
            var b = PruneTestSupport.ReadMatrix(fw, $"blk.1.{l}.weight", out _, out _);
            for (int r = 0; r < rows; r++) Assert.Equal(cols / 2, a.AsSpan(r * cols, cols).Count(0f));
            for (int i = 0; i < a.Length; i++) if ((a[i] == 0) != (b[i] == 0)) differ++;
        }
        Assert.True(differ > 0, "GBLM chose exactly Wanda's mask: the gradient term had no effect");
    }
}
