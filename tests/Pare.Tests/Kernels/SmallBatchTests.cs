using Pare.Kernels;
using Pare.Tensors;
using static Pare.Tests.Kernels.KernelTestUtil;

namespace Pare.Tests.Kernels;

/// <summary>The streaming few-token kernel (<see cref="SmallBatch"/>) against the slow reference.</summary>
public class SmallBatchTests
{
    // F32 activations throughout: exact up to float rounding of the sums.
    const double Tolerance = 1e-10;

    public static TheoryData<GgmlType, int, int> Shapes()
    {
        var data = new TheoryData<GgmlType, int, int>();
        foreach (var t in new[] { GgmlType.F32, GgmlType.F16, GgmlType.BF16 })
            // Rows around the 4-row tiles, 8-row groups and 16-row chunks; columns with and without a tail past 16.
            foreach (var (r, c) in new[] { (1, 7), (3, 16), (13, 100), (37, 128), (70, 353), (16, 64) })
                data.Add(t, r, c);
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public unsafe void SmallBatch_matches_reference(GgmlType type, int rows, int cols)
    {
        if (!MatMul.Avx512) return;
        var w = RandomMatrix(type, rows, cols, seed: rows * 31 + cols, out var pin);
        foreach (int n in Enumerable.Range(1, 17).Append(SmallBatch.MaxTokens).Append(SmallBatch.MaxTokens + 1).Append(2 * SmallBatch.MaxTokens + 3))
        {
            var x = Random(n * cols, seed: n + 100);
            var expected = new float[n * rows];
            MatMulReference.MatMulRows(w, x, n, expected);
            foreach (int threads in new[] { 1, 2 })
            {
                var y = new float[n * rows];
                fixed (float* px = x, py = y) SmallBatch.MatMulRows(w, px, n, py, threads);
                double e = Nmse(y, expected);
                Assert.True(e < Tolerance, $"{type} {rows}x{cols} n={n} threads={threads}: nmse {e}");
                // The public entry point dispatches to it (past MaxTokens in chunks of MaxTokens, these matrices being narrow) with the same result.
                var z = new float[n * rows];
                MatMul.MatMulRows(w, x, n, z, threads);
                Assert.True(Nmse(z, expected) < Tolerance, $"{type} {rows}x{cols} n={n} threads={threads} via MatMul: nmse {Nmse(z, expected)}");
            }
        }
        GC.KeepAlive(pin);
    }

    [Fact]
    public unsafe void Outputs_land_in_their_own_slots()
    {
        // One-hot weights and tokens: y[t, r] must be exactly x[t, r % cols] with nothing leaking between slots.
        if (!MatMul.Avx512) return;
        const int rows = 11, cols = 48, n = 7;
        var values = new float[rows * cols];
        for (int r = 0; r < rows; r++) values[r * cols + r % cols] = 1;
        var w = Matrix(GgmlType.F32, rows, cols, Quantizer.Quantize(GgmlType.F32, values), out var pin);
        var x = new float[n * cols];
        for (int i = 0; i < x.Length; i++) x[i] = i + 1;
        var y = new float[n * rows];
        fixed (float* px = x, py = y) SmallBatch.MatMulRows(w, px, n, py, 1);
        for (int t = 0; t < n; t++)
            for (int r = 0; r < rows; r++)
                Assert.Equal(x[t * cols + r % cols], y[t * rows + r]);
        GC.KeepAlive(pin);
    }
}
