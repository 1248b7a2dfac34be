using Pare.Models.Bert;

namespace Pare.Tests.Encoders;

/// <summary>The encoder's element-wise ops against their double-precision references.</summary>
public class BertOpsTests
{
    [Fact]
    public void Erf_is_within_5e7_of_the_reference_everywhere()
    {
        double worst = 0;
        for (double x = -8; x <= 8; x += 1e-3) worst = Math.Max(worst, Math.Abs(BertOps.Erf((float)x) - BertOpsReference.Erf((float)x)));
        // A&S 7.1.26 is within 1.5e-7; evaluating it in float adds rounding.
        Assert.True(worst < 5e-7, $"max |erf error| {worst:E2}");
        // The reference itself: values from a double-precision libm erf.
        Assert.Equal(0.8427007929497149, BertOpsReference.Erf(1), 12);
        Assert.Equal(0.9999779095030014, BertOpsReference.Erf(3), 12);
        Assert.Equal(-0.5204998778130465, BertOpsReference.Erf(-0.5), 12);
        Assert.Equal(0.9999999988065282, BertOpsReference.Erf(4.3), 12);
        Assert.Equal(0.9999778955735178, BertOpsReference.Erf(2.9999), 12); // both sides of the series / fraction switch
        Assert.Equal(0.9999779234241298, BertOpsReference.Erf(3.0001), 12);
    }

    [Fact]
    public void Gelu_matches_the_reference()
    {
        var rng = new Random(3);
        var x = Enumerable.Range(0, 4099).Select(_ => (float)(rng.NextDouble() * 16 - 8)).ToArray();
        var fast = x.ToArray(); var slow = x.ToArray();
        BertOps.Gelu(fast); BertOpsReference.Gelu(slow);
        for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(fast[i] - slow[i]) <= 1e-6 * Math.Max(1, Math.Abs(x[i])), $"gelu({x[i]}): {fast[i]} vs {slow[i]}");
    }

    [Theory]
    [InlineData(384)]
    [InlineData(7)]
    [InlineData(1536)]
    public void LayerNorm_matches_the_reference(int n)
    {
        var rng = new Random(n);
        float[] R(double scale, double shift) => [.. Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * scale + shift))];
        var x = R(20, 3); var w = R(2, -1); var b = R(1, -0.5);
        var fast = new float[n]; var slow = new float[n];
        BertOps.LayerNorm(x, w, b, 1e-12f, fast);
        BertOpsReference.LayerNorm(x, w, b, 1e-12f, slow);
        for (int i = 0; i < n; i++) Assert.True(Math.Abs(fast[i] - slow[i]) < 2e-5, $"{i}: {fast[i]} vs {slow[i]}");
    }

    [Fact]
    public void Mean_and_cls_pooling_with_normalization()
    {
        var h = new BertHidden([1, 2, 3, 6, 3, 4, 100, 100], [0, 2, 4], 2);
        var mean = SentencePooling.Pool(h, BertPooling.Mean, normalize: false);
        Assert.Equal([2f, 4f], mean[0]);
        var cls = SentencePooling.Pool(h, BertPooling.Cls, normalize: true);
        Assert.Equal([0.6f, 0.8f], cls[1].Select(v => MathF.Round(v, 6)));
    }
}
