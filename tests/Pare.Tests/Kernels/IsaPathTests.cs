using Pare.Kernels;
using Pare.Kernels.Formats;
using Pare.Tensors;
using static Pare.Tests.Kernels.KernelTestUtil;

namespace Pare.Tests.Kernels;

/// <summary>
/// Every kernel tier this machine can run (AVX-512, AVX2, portable), forced one at a time, against the scalar reference.
/// A tier above the machine's best runs the best one; the AVX-VNNI / vpmaddubsw choice inside the int8 dots follows
/// the hardware (run with DOTNET_EnableAVXVNNI=0 to test the vpmaddubsw one on an AVX-VNNI machine).
/// </summary>
public class IsaPathTests
{
    public static TheoryData<GgmlType, int> Formats() => new()
    {
        { GgmlType.F32, 100 }, { GgmlType.F16, 288 }, { GgmlType.BF16, 96 }, { GgmlType.Q8_0, 544 },
        { GgmlType.Q4_0, 288 }, { GgmlType.Q4_K, 512 }, { GgmlType.Q6_K, 768 },
    };

    [Theory]
    [MemberData(nameof(Formats))]
    public void Every_tier_matches_the_reference(GgmlType type, int cols)
    {
        const int rows = 77;
        var w = RandomMatrix(type, rows, cols, seed: cols + rows, out var pin);
        var x = Random(cols, seed: 3);
        var expected = new float[rows];
        var asKernel = new float[rows];
        MatMulReference.MatVec(w, x, expected);
        MatMulReference.MatVecAsKernel(w, x, asKernel);
        foreach (var path in new[] { MatMul.IsaPath.Avx512, MatMul.IsaPath.Avx2, MatMul.IsaPath.Portable })
        {
            var y = new float[rows];
            MatMul.MatVec(w, x, y, 2, path);
            var ran = path > MatMul.Isa ? MatMul.Isa : path;
            bool quantized = MatMul.QuantizesActivations(type, ran);
            // The int8 tiers round x exactly as the reference that rounds it (same on every tier).
            double e = Nmse(y, quantized ? asKernel : expected);
            Assert.True(e < 1e-10, $"{type} on {ran}: nmse {e}");
        }
        GC.KeepAlive(pin);
    }

    [Fact]
    public unsafe void Avx2_activation_quantizer_equals_the_reference()
    {
        if (!Q8Act.Supported) return; // no AVX2: the quantizer cannot run here (and no kernel calls it)
        var rng = new Random(5);
        var x = new float[32];
        var q = new sbyte[32];
        var qr = new sbyte[32];
        for (int trial = 0; trial < 2000; trial++)
        {
            float scale = (float)Math.Pow(10, rng.Next(-6, 4));
            for (int i = 0; i < 32; i++) x[i] = (float)(rng.NextDouble() - 0.5) * scale;
            if (trial % 7 == 0) for (int i = 0; i < 32; i++) x[i] = (i - 16) * 0.5f; // exact halves: ties round to even
            if (trial == 1) Array.Clear(x);
            float d;
            int sum;
            fixed (float* px = x)
            fixed (sbyte* pq = q)
                d = Q8Act.QuantizeBlock256(px, pq, out sum);
            float dr = Q8Act.QuantizeBlockReference(x, qr);
            Assert.Equal(dr, d);
            Assert.Equal(qr, q);
            Assert.Equal(qr.Sum(v => (int)v), sum);
        }
    }
}
