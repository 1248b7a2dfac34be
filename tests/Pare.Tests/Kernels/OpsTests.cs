using Pare.Kernels;
using Pare.Models;
using static Pare.Tests.Kernels.KernelTestUtil;
using Pare.Tensors;

namespace Pare.Tests.Kernels;

public class OpsTests
{
    static readonly int[] Lengths = [1, 15, 16, 17, 64, 100, 1000];

    [Fact]
    public void RmsNorm_matches_reference()
    {
        foreach (int n in Lengths)
        {
            var x = Random(n, n); var w = Random(n, n + 1);
            var a = new float[n]; var b = new float[n];
            Ops.RmsNorm(x, w, 1e-5f, a);
            OpsReference.RmsNorm(x, w, 1e-5f, b);
            Assert.True(Nmse(a, b) < 1e-12, $"n={n}");
        }
    }

    [Fact]
    public void Softmax_matches_reference_and_handles_masked_entries()
    {
        foreach (int n in Lengths)
        {
            var x = Random(n, n, 10f);
            for (int i = 3; i < n; i += 5) x[i] = float.NegativeInfinity;
            var a = (float[])x.Clone(); var b = (float[])x.Clone();
            Ops.Softmax(a);
            OpsReference.Softmax(b);
            Assert.True(Nmse(a, b) < 1e-12, $"n={n}");
            for (int i = 3; i < n; i += 5) Assert.Equal(0f, a[i]);
            Assert.Equal(1.0, a.Sum(v => (double)v), 5);
        }
        var big = new float[] { 1000f, 1000f, float.NegativeInfinity };
        Ops.Softmax(big);
        Assert.Equal([0.5f, 0.5f, 0f], big);
    }

    [Fact]
    public void Exp_is_within_two_ulp_and_exactly_zero_below_its_range()
    {
        if (!System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated) return;
        double worst = 0;
        // Every output in the normal range of floats (below about -87.3 they are subnormal and lose precision).
        for (float x = -87f; x < 88.5f; x += 0.00037f)
        {
            float e = Ops.Exp(System.Runtime.Intrinsics.Vector512.Create(x))[0];
            double t = Math.Exp(x);
            worst = Math.Max(worst, Math.Abs(e - t) / t);
        }
        Assert.True(worst < 2 * 5.96e-8, $"worst relative error {worst}");
        foreach (float x in new[] { float.NegativeInfinity, -1000f, -121f })
            Assert.Equal(0f, Ops.Exp(System.Runtime.Intrinsics.Vector512.Create(x))[0]);
        Assert.Equal(1f, Ops.Exp(System.Runtime.Intrinsics.Vector512<float>.Zero)[0]);
        Assert.True(float.IsFinite(Ops.Exp(System.Runtime.Intrinsics.Vector512.Create(1000f))[0]));
    }

    [Fact]
    public void SwiGlu_matches_reference()
    {
        foreach (int n in Lengths)
        {
            var g = Random(n, n, 8f); var u = Random(n, n + 1);
            var a = (float[])g.Clone(); var b = (float[])g.Clone();
            Ops.SwiGlu(a, u);
            OpsReference.SwiGlu(b, u);
            Assert.True(Nmse(a, b) < 1e-12, $"n={n}");
        }
        var extreme = new float[] { -200f, 200f, 0f };
        Ops.SwiGlu(extreme, [1f, 1f, 1f]);
        Assert.Equal([-0f, 200f, 0f], extreme);
    }

    [Theory]
    [InlineData(RopeLayout.Interleaved, 64, 64)]
    [InlineData(RopeLayout.HalfSplit, 64, 64)]
    [InlineData(RopeLayout.HalfSplit, 128, 64)]
    [InlineData(RopeLayout.Interleaved, 96, 32)]
    [InlineData(RopeLayout.HalfSplit, 24, 24)]
    public void Rope_matches_reference(RopeLayout layout, int headDim, int ropeDim)
    {
        foreach (int pos in new[] { 0, 1, 17, 4095 })
        {
            var v = Random(3 * headDim, pos);
            var a = (float[])v.Clone(); var b = (float[])v.Clone();
            Ops.Rope(a, 3, headDim, ropeDim, pos, 10000f, layout);
            OpsReference.Rope(b, 3, headDim, ropeDim, pos, 10000f, layout);
            Assert.True(Nmse(a, b) < 1e-12, $"pos={pos}");
        }
    }

    [Fact]
    public void Dot_and_Axpy_match_reference()
    {
        foreach (int n in Lengths)
        {
            var x = Random(n, n); var y = Random(n, n + 1);
            float d = Ops.Dot(x, y), e = OpsReference.Dot(x, y);
            Assert.True(MathF.Abs(d - e) <= 1e-5f * (1 + MathF.Abs(e)), $"n={n}: {d} vs {e}");
            var a = (float[])y.Clone(); var b = (float[])y.Clone();
            Ops.Axpy(0.37f, x, a);
            OpsReference.Axpy(0.37f, x, b);
            Assert.True(Nmse(a, b) < 1e-12, $"n={n}");
        }
    }
}
