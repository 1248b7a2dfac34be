using Pare.Pruning;

namespace Pare.Tests.Pruning;

/// <summary>The three methods on one matrix with correlated calibration inputs: exact masks and reconstruction quality.</summary>
public class MethodTests
{
    const int Rows = 48, Cols = 256, Tokens = 1024;

    /// <summary>Inputs with correlated columns and very different column scales (as real activations have).</summary>
    static float[] CorrelatedInputs(int seed)
    {
        var rng = new Random(seed);
        const int k = 24; // latent factors
        var mix = new double[k * Cols];
        for (int i = 0; i < mix.Length; i++) mix[i] = rng.NextDouble() * 2 - 1;
        var scale = new double[Cols];
        for (int j = 0; j < Cols; j++) scale[j] = Math.Exp(rng.NextDouble() * 3 - 1.5);
        var x = new float[Tokens * Cols];
        var z = new double[k];
        for (int t = 0; t < Tokens; t++)
        {
            for (int i = 0; i < k; i++) z[i] = rng.NextDouble() * 2 - 1;
            for (int j = 0; j < Cols; j++)
            {
                double s = 0.3 * (rng.NextDouble() * 2 - 1);
                for (int i = 0; i < k; i++) s += z[i] * mix[i * Cols + j];
                x[t * Cols + j] = (float)(s * scale[j]);
            }
        }
        return x;
    }

    static float[] RandomWeights(int seed)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, Rows * Cols).Select(_ => (float)(rng.NextDouble() * 2 - 1))];
    }

    static (double[] Sq, double[] XtX) Stats(float[] x)
    {
        var st = new LayerStats(Cols, hessian: true, errorTokens: 0);
        st.Add(x, Tokens, 2);
        return (st.MeanSq(), st.Hessian());
    }

    static double Error(float[] w0, float[] w1, float[] x) => LayerStats.RelativeError(w0, w1, Rows, Cols, x);

    public static TheoryData<string> Patterns() => ["0.5", "0.7", "2:4", "4:8"];

    static SparsityPattern P(string s) => s.Contains(':') ? SparsityPattern.Parse(s, 0) : SparsityPattern.Unstructured(double.Parse(s, System.Globalization.CultureInfo.InvariantCulture));

    static float[] Run(PruneMethod m, SparsityPattern p, float[] w0, float[] x, out bool[] pruned)
    {
        var w = (float[])w0.Clone();
        pruned = new bool[w.Length];
        var (sq, h) = Stats(x);
        switch (m)
        {
            case PruneMethod.Magnitude: Magnitude.Prune(w, Rows, Cols, p, pruned); break;
            case PruneMethod.Wanda: Wanda.Prune(w, Rows, Cols, sq, p, pruned); break;
            default: SparseGpt.Prune(w, Rows, Cols, h, p, pruned, blockSize: 128, damp: 0.01); break;
        }
        return w;
    }

    [Theory]
    [MemberData(nameof(Patterns))]
    public void Reconstruction_error_orders_SparseGPT_then_Wanda_then_magnitude(string pattern)
    {
        var p = P(pattern);
        var x = CorrelatedInputs(1);
        var w0 = RandomWeights(2);
        double eMag = Error(w0, Run(PruneMethod.Magnitude, p, w0, x, out _), x);
        double eWanda = Error(w0, Run(PruneMethod.Wanda, p, w0, x, out _), x);
        double eGpt = Error(w0, Run(PruneMethod.SparseGpt, p, w0, x, out _), x);
        Assert.True(eGpt < eWanda && eWanda < eMag, $"{pattern}: SparseGPT {eGpt:G4}, Wanda {eWanda:G4}, magnitude {eMag:G4}");
    }

    [Theory]
    [InlineData(PruneMethod.Magnitude)]
    [InlineData(PruneMethod.Wanda)]
    [InlineData(PruneMethod.SparseGpt)]
    public void Masks_are_exact_and_pruned_weights_zero(PruneMethod m)
    {
        var x = CorrelatedInputs(3);
        var w0 = RandomWeights(4);
        foreach (var ps in new[] { "0.1", "0.5", "0.9", "2:4", "4:8" })
        {
            var p = P(ps);
            var w = Run(m, p, w0, x, out var pruned);
            for (int i = 0; i < w.Length; i++) if (pruned[i]) Assert.Equal(0f, w[i]);
            if (p.IsNM) { SparsityAssert.ValidNM(pruned, Rows, Cols, p.N, p.M, exact: true); continue; }
            long zeros = pruned.LongCount(b => b);
            if (m == PruneMethod.Wanda)
                for (int r = 0; r < Rows; r++) Assert.Equal(Masks.Count(p.Ratio, Cols), pruned.Skip(r * Cols).Take(Cols).Count(b => b));
            else Assert.Equal(Masks.Count(p.Ratio, (long)Rows * Cols), zeros);
        }
    }

    [Fact]
    public void Hessian_is_the_packed_upper_triangle_of_2_XtX_over_sequences()
    {
        const int cols = 13, n = 20; // not a multiple of the 4 x 4 tiles
        var rng = new Random(2);
        var st = new LayerStats(cols, hessian: true, errorTokens: 0);
        var seqs = Enumerable.Range(0, 2).Select(_ => Enumerable.Range(0, n * cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray()).ToArray();
        foreach (var x in seqs) st.Add(x, n, 2);
        var h = st.Hessian();
        Assert.Equal(Linalg.PackedLength(cols), h.Length);
        for (int i = 0; i < cols; i++)
            for (int j = i; j < cols; j++)
            {
                double s = seqs.Sum(x => Enumerable.Range(0, n).Sum(t => (double)x[t * cols + i] * x[t * cols + j])) * 2 / seqs.Length;
                Assert.True(Math.Abs(h[Linalg.UpperIndex(cols, i, j)] - s) < 1e-5 * (1 + Math.Abs(s)), $"({i},{j})");
            }
    }

    [Fact]
    public void Statistics_reset_for_the_next_block_equal_fresh_ones_in_the_same_storage()
    {
        float[] x0 = CorrelatedInputs(3), x1 = CorrelatedInputs(4);
        var reused = new LayerStats(Cols, hessian: true, errorTokens: 16);
        reused.Add(x0, Tokens, 2);
        var h0 = reused.Hessian(last: true);
        Array.Fill(h0, double.NaN); // a handed-over Hessian is the caller's to overwrite (SparseGPT factorizes it in place)
        Assert.Throws<InvalidOperationException>(() => reused.Add(x1, Tokens, 2));
        Assert.Throws<InvalidOperationException>(() => reused.Hessian());
        reused.Reset();
        reused.Add(x1, Tokens, 2);
        var fresh = new LayerStats(Cols, hessian: true, errorTokens: 16);
        fresh.Add(x1, Tokens, 2);
        Assert.Equal((fresh.Tokens, fresh.Sequences), (reused.Tokens, reused.Sequences));
        Assert.Equal(fresh.SqSum, reused.SqSum);
        Assert.Equal(fresh.Sample, reused.Sample);
        var h1 = reused.Hessian(last: true);
        Assert.Same(h0, h1);
        Assert.Equal(fresh.Hessian(), h1);
    }

    [Fact]
    public void Magnitude_prunes_the_smallest_weights_of_the_whole_matrix()
    {
        float[] w = [0.1f, -5f, 3f, -0.2f, 0.05f, 4f, -1f, 2f];
        var pruned = new bool[8];
        Magnitude.Prune(w, 2, 4, SparsityPattern.Unstructured(0.5), pruned);
        Assert.Equal(new float[] { 0, -5f, 3f, 0, 0, 4f, 0, 2f }, w);
        float[] v = [0.1f, -5f, 3f, -0.2f, 0.05f, 4f, -1f, 2f];
        Magnitude.Prune(v, 2, 4, SparsityPattern.NM(2, 4), new bool[8]);
        Assert.Equal(new float[] { 0, -5f, 3f, 0, 0, 4f, 0, 2f }, v);
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(-0.1)]
    [InlineData(double.NaN)]
    public void Sparsity_outside_0_1_is_rejected(double s) => Assert.Throws<PareException>(() => SparsityPattern.Unstructured(s));

    [Theory]
    [InlineData("4:4")]
    [InlineData("5:4")]
    [InlineData("0:4")]
    [InlineData("2-4")]
    public void Bad_NM_patterns_are_rejected(string s) => Assert.Throws<PareException>(() => SparsityPattern.Parse(s, 0.5));

    [Fact]
    public void Overrides_match_by_glob_first_match_wins()
    {
        var o = new PruneOptions
        {
            Pattern = SparsityPattern.Unstructured(0.5),
            Overrides = [LayerOverride.Parse("blk.0.*=skip"), LayerOverride.Parse("*.ffn_down.weight=2:4"), LayerOverride.Parse("blk.1?.attn_q.weight=0.3")],
        };
        Assert.Null(o.PatternFor("blk.0.ffn_down.weight"));
        Assert.Equal(SparsityPattern.NM(2, 4), o.PatternFor("blk.3.ffn_down.weight"));
        Assert.Equal(0.3, o.PatternFor("blk.12.attn_q.weight")!.Value.Ratio, 9);
        Assert.Equal(0.5, o.PatternFor("blk.2.attn_q.weight")!.Value.Ratio, 9);
    }
}

internal static class SparsityAssert
{
    /// <summary>Every group of M consecutive inputs of every row has at most (exact: exactly) M - N... kept N.</summary>
    public static void ValidNM(IReadOnlyList<bool> pruned, int rows, int cols, int n, int m, bool exact)
    {
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < cols; g += m)
            {
                int kept = 0;
                for (int i = 0; i < m; i++) if (!pruned[r * cols + g + i]) kept++;
                if (exact) Assert.True(kept == n, $"row {r} group {g / m}: {kept} kept, expected {n}");
                else Assert.True(kept <= n, $"row {r} group {g / m}: {kept} kept, at most {n} allowed");
            }
    }
}

public class MaskTests
{
    [Fact]
    public void Kth_smallest_matches_sorting()
    {
        var rng = new Random(9);
        foreach (int n in new[] { 1, 2, 10, 1000 })
        {
            var a = Enumerable.Range(0, n).Select(_ => (float)rng.Next(50)).ToArray();
            var sorted = a.Order().ToArray();
            for (int k = 0; k < n; k += Math.Max(1, n / 17)) Assert.Equal(sorted[k], Masks.KthSmallest((float[])a.Clone(), k));
        }
    }

    [Fact]
    public void Prune_smallest_is_exact_with_ties()
    {
        float[] s = [1, 1, 1, 1, 0, 2];
        var p = new bool[6];
        Masks.PruneSmallest(s, 3, p);
        Assert.Equal(new[] { true, true, false, false, true, false }, p);
        var scratch = new float[10]; // a longer scratch buffer instead of a copy: same mask, scores untouched
        var q = new bool[6];
        Masks.PruneSmallest(s, 3, q, scratch);
        Assert.Equal(p, q);
        Assert.Equal(new float[] { 1, 1, 1, 1, 0, 2 }, s);
    }
}
