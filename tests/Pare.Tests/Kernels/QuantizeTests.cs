using System.Buffers.Binary;
using Pare.Kernels;
using Pare.Tensors;
using static Pare.Tests.Kernels.KernelTestUtil;

namespace Pare.Tests.Kernels;

public class QuantizeTests
{
    static float[] RoundTrip(GgmlType type, float[] x)
    {
        var bytes = Quantizer.Quantize(type, x);
        Assert.Equal(GgmlTypeInfo.RowBytes(type, x.Length), bytes.Length);
        var y = new float[x.Length];
        Dequant.Row(type, bytes, y);
        return y;
    }

    [Fact]
    public void F32_round_trip_is_exact() => Assert.Equal(Random(77, 1), RoundTrip(GgmlType.F32, Random(77, 1)));

    [Fact]
    public void F16_is_exact_for_representable_values_and_rounds_otherwise()
    {
        float[] exact = [0f, -0f, 1f, -2.5f, 65504f, -65504f, 6.1035156e-05f, 5.9604645e-08f, -3.0517578e-05f, 0.099975586f];
        Assert.Equal(exact, RoundTrip(GgmlType.F16, exact));
        var x = Random(300, 2);
        var y = RoundTrip(GgmlType.F16, x);
        for (int i = 0; i < x.Length; i++) Assert.True(MathF.Abs(x[i] - y[i]) <= MathF.Abs(x[i]) * (1f / 2048) + 3e-8f, $"{x[i]} -> {y[i]}");
    }

    [Fact]
    public void BF16_is_exact_for_representable_values_and_rounds_to_nearest_even()
    {
        float[] exact = [0f, 1f, -2.5f, 3.3895314e38f, 1.1754944e-38f, -0.0078125f];
        Assert.Equal(exact, RoundTrip(GgmlType.BF16, exact));
        // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: ties go to the even mantissa (1).
        Assert.Equal(1f, RoundTrip(GgmlType.BF16, [1f + (1f / 256)])[0]);
        Assert.Equal(1f + (1f / 64), RoundTrip(GgmlType.BF16, [1f + (1f / 128) + (1f / 256)])[0]);
        var x = Random(300, 3);
        var y = RoundTrip(GgmlType.BF16, x);
        for (int i = 0; i < x.Length; i++) Assert.True(MathF.Abs(x[i] - y[i]) <= MathF.Abs(x[i]) * (1f / 256), $"{x[i]} -> {y[i]}");
    }

    [Fact]
    public void Q8_0_error_is_within_half_a_step()
    {
        var x = Random(32 * 20, 4);
        var bytes = Quantizer.Quantize(GgmlType.Q8_0, x);
        var y = new float[x.Length];
        Dequant.Row(GgmlType.Q8_0, bytes, y);
        for (int b = 0; b < 20; b++)
        {
            float amax = 0;
            for (int i = 0; i < 32; i++) amax = MathF.Max(amax, MathF.Abs(x[32 * b + i]));
            float d = amax / 127;
            float d16 = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(34 * b)));
            for (int i = 0; i < 32; i++)
            {
                int q = (sbyte)bytes[34 * b + 2 + i];
                // Half a step, plus what storing d as f16 moves q * d.
                float bound = d / 2 + MathF.Abs(q) * MathF.Abs(d - d16) + 1e-7f;
                Assert.True(MathF.Abs(x[32 * b + i] - y[32 * b + i]) <= bound, $"block {b} elem {i}");
            }
        }
    }

    [Fact]
    public void Q8_0_matches_ggml_on_a_known_block()
    {
        // max |x| = 127 gives d = 1 exactly: q = round(x) with halves away from zero, as C's roundf.
        var x = new float[32];
        for (int i = 0; i < 32; i++) x[i] = i - 16.5f;
        x[31] = 127f;
        var bytes = Quantizer.Quantize(GgmlType.Q8_0, x);
        Assert.Equal(Half(1f), BinaryPrimitives.ReadUInt16LittleEndian(bytes));
        Assert.Equal(-17, (sbyte)bytes[2]);   // -16.5 -> -17
        Assert.Equal(-16, (sbyte)bytes[3]);   // -15.5 -> -16
        Assert.Equal(1, (sbyte)bytes[2 + 17]); // 0.5 -> 1
        Assert.Equal(127, (sbyte)bytes[33]);
    }

    [Fact]
    public void Q4_0_matches_ggml_on_a_known_block()
    {
        // Signed max -16 gives d = 2; q = min(15, trunc(x / 2 + 8.5)); low nibbles are elements 0..15.
        var x = new float[32];
        for (int i = 0; i < 32; i++) x[i] = (i % 16) - 8;
        x[5] = -16f; x[20] = 15.9f;
        var bytes = Quantizer.Quantize(GgmlType.Q4_0, x);
        Assert.Equal(Half(2f), BinaryPrimitives.ReadUInt16LittleEndian(bytes));
        for (int i = 0; i < 16; i++)
        {
            int lo = bytes[2 + i] & 0xF, hi = bytes[2 + i] >> 4;
            Assert.Equal(Math.Min(15, (int)(x[i] / 2 + 8.5f)), lo);
            Assert.Equal(Math.Min(15, (int)(x[i + 16] / 2 + 8.5f)), hi);
        }
        Assert.Equal(0, bytes[2 + 5] & 0xF);  // the signed max maps to q = 0 exactly
        Assert.Equal(15, bytes[2 + 4] >> 4);  // 15.9 / 2 + 8.5 = 16.45 clamps to 15
        var y = new float[32];
        Dequant.Row(GgmlType.Q4_0, bytes, y);
        Assert.Equal(-16f, y[5]);
        for (int i = 0; i < 32; i++) Assert.True(MathF.Abs(x[i] - y[i]) <= 2f, $"elem {i}");
    }

    [Theory]
    [InlineData(GgmlType.Q4_0, 0.03)] // outliers in the data widen the 4-bit steps
    [InlineData(GgmlType.Q4_K, 0.01)]
    [InlineData(GgmlType.Q6_K, 0.001)]
    [InlineData(GgmlType.Q8_0, 1e-4)]
    public void Round_trip_error_is_small(GgmlType type, double maxNmse)
    {
        var x = Random(256 * 8, 9);
        var y = RoundTrip(type, x);
        double e = Nmse(y, x);
        Assert.True(e < maxNmse, $"{type}: nmse {e}");
    }

    [Fact]
    public void Q4_K_quantizer_keeps_each_value_within_one_step()
    {
        var x = Random(256 * 4, 10);
        var y = RoundTrip(GgmlType.Q4_K, x);
        for (int j = 0; j < x.Length / 32; j++)
        {
            float lo = 0, hi = float.MinValue;
            for (int l = 0; l < 32; l++) { lo = MathF.Min(lo, x[32 * j + l]); hi = MathF.Max(hi, x[32 * j + l]); }
            float step = (hi - lo) / 15;
            for (int l = 0; l < 32; l++)
                Assert.True(MathF.Abs(x[32 * j + l] - y[32 * j + l]) <= step * 1.1f, $"sub-block {j} elem {l}");
        }
    }
}
