using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Pare.Kernels;
using Pare.Tensors;
using static Pare.Tests.Kernels.KernelTestUtil;

namespace Pare.Tests.Kernels;

/// <summary>The panel copy of narrow F32 matrices (<see cref="F32Panels"/>) against the slow reference.</summary>
public class F32PanelsTests
{
    [Theory]
    [InlineData(1, 7)]      // one padded panel
    [InlineData(16, 256)]   // one full panel
    [InlineData(37, 100)]   // two panels and a padded third: a pair and a single per chunk
    [InlineData(128, 256)]  // pare-ref's K/V projection
    [InlineData(200, 33)]   // chunks of four panels and a remainder
    public unsafe void Panels_match_reference(int rows, int cols)
    {
        if (!MatMul.Avx512) return;
        var w = RandomMatrix(GgmlType.F32, rows, cols, seed: rows * 7 + cols, out var pin);
        Assert.True(F32Panels.Applies(w));
        var panels = F32Panels.Pack(w);
        // Token counts around the tiles of 8, 4, 2 and 1.
        foreach (int n in Enumerable.Range(1, 19).Append(64).Append(131))
        {
            var x = Random(n * cols, seed: n + 5);
            var expected = new float[n * rows];
            MatMulReference.MatMulRows(w, x, n, expected);
            foreach (int threads in new[] { 1, 2 })
            {
                var y = new float[n * rows];
                fixed (float* px = x, py = y) panels.MatMulRows(px, n, py, threads);
                double e = Nmse(y, expected);
                Assert.True(e < 1e-10, $"{rows}x{cols} n={n} threads={threads}: nmse {e}");
                // The public entry point takes the panel path for this matrix.
                var z = new float[n * rows];
                MatMul.MatMulRows(w, x, n, z, threads);
                Assert.Equal(y, z);
            }
        }
        GC.KeepAlive(pin);
    }

    [Fact]
    public unsafe void Mutable_matrices_get_no_panels_and_products_see_changed_data()
    {
        if (!MatMul.Avx512) return;
        const int rows = 32, cols = 64, n = 3;
        var data = GC.AllocateArray<float>(rows * cols, pinned: true);
        Random(rows * cols, seed: 9).CopyTo(data, 0);
        var w = new WeightMatrix("m", GgmlType.F32, rows, cols, (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(data)), data.Length * 4L) { Mutable = true };
        Assert.Null(w.Panels);
        var x = Random(n * cols, seed: 10);
        var y = new float[n * rows];
        MatMul.MatMulRows(w, x, n, y, 2);
        // Prune half of the weights in place, as the pruner does, and multiply again through the same matrix.
        for (int i = 0; i < data.Length; i += 2) data[i] = 0;
        MatMul.MatMulRows(w, x, n, y, 2);
        var expected = new float[n * rows];
        MatMulReference.MatMulRows(w, x, n, expected);
        Assert.True(Nmse(y, expected) < 1e-10, $"nmse {Nmse(y, expected)}");
    }

    [Fact]
    public void Wide_or_quantized_matrices_get_no_panels()
    {
        var wide = RandomMatrix(GgmlType.F32, 4, SmallBatch.MaxChunkedCols + 16, seed: 1, out var pin1);
        var f16 = RandomMatrix(GgmlType.F16, 4, 64, seed: 2, out var pin2);
        Assert.Null(wide.Panels);
        Assert.Null(f16.Panels);
        GC.KeepAlive(pin1); GC.KeepAlive(pin2);
    }
}
