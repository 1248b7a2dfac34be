using Pare.Kernels;
using Pare.Tensors;
using static Pare.Tests.Kernels.KernelTestUtil;

namespace Pare.Tests.Kernels;

public class MatMulTests
{
    // All fast paths keep F32 weights-times-activations exact up to float rounding (no activation quantization).
    const double Tolerance = 1e-10;

    // Kernels that round x to int8 per block (llama.cpp's Q8_K / Q8_0 activations; see MatMul.QuantizesActivations)
    // differ from F32 activations by that rounding: a relative error of about 2^-8 per value, so an NMSE of a few 1e-5
    // (llama.cpp's test-backend-ops allows 5e-4 for matrix products).
    const double ActivationRoundingTolerance = 5e-4;

    public static TheoryData<GgmlType, int, int> Shapes()
    {
        var data = new TheoryData<GgmlType, int, int>();
        foreach (var t in new[] { GgmlType.F32, GgmlType.F16, GgmlType.BF16 })
            foreach (var (r, c) in new[] { (1, 7), (5, 33), (37, 256), (6, 100) })
                data.Add(t, r, c);
        foreach (var t in new[] { GgmlType.Q8_0, GgmlType.Q4_0 })
            foreach (var (r, c) in new[] { (1, 32), (5, 96), (37, 256), (19, 544), (9, 1088) })
                data.Add(t, r, c);
        foreach (var t in new[] { GgmlType.Q4_K, GgmlType.Q6_K })
            foreach (var (r, c) in new[] { (1, 256), (5, 512), (37, 768), (18, 256), (9, 2304) })
                data.Add(t, r, c);
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MatVec_matches_reference(GgmlType type, int rows, int cols)
    {
        var w = RandomMatrix(type, rows, cols, seed: rows * 1000 + cols, out var pin);
        var x = Random(cols, seed: 7);
        var expected = new float[rows];
        var asKernel = new float[rows];
        MatMulReference.MatVec(w, x, expected);
        MatMulReference.MatVecAsKernel(w, x, asKernel);
        foreach (bool portable in new[] { false, true })
            foreach (int threads in new[] { 1, 2 })
            {
                var y = new float[rows];
                MatMul.MatVec(w, x, y, threads, portable);
                bool quantized = !portable && MatMul.QuantizesActivations(type);
                // Exact against the reference that rounds x the same way; within activation rounding of the F32 result.
                double e = Nmse(y, quantized ? asKernel : expected);
                Assert.True(e < Tolerance, $"{type} {rows}x{cols} threads={threads} portable={portable}: nmse {e}");
                double f = Nmse(y, expected);
                Assert.True(f < (quantized ? ActivationRoundingTolerance : Tolerance), $"{type} {rows}x{cols} vs F32 activations: nmse {f}");
            }
        GC.KeepAlive(pin);
    }

    [Fact]
    public void Decode_threads_split_float_weights_by_bytes_and_quantized_by_work()
    {
        // pare-ref's 256 x 256 F32 matrix (256 KiB) is split; the same in Q8_0 (68 KiB, 65k multiply-adds) is not.
        Assert.Equal(2, MatMul.DecodeThreads(GgmlType.F32, 256 * 256, 256 * 256 * 4, 2));
        Assert.Equal(1, MatMul.DecodeThreads(GgmlType.Q8_0, 256 * 256, 256 * 272, 2));
        Assert.Equal(1, MatMul.DecodeThreads(GgmlType.F32, 16 * 256, 16 * 256 * 4, 2));
        Assert.Equal(2, MatMul.DecodeThreads(GgmlType.Q8_0, 8192 * 256, 8192 * 272, 2));
    }

    [Theory]
    [InlineData(GgmlType.F32, GgmlType.F32, 256, 1)]   // narrow F32: panel copies
    [InlineData(GgmlType.F32, GgmlType.F32, 1280, 1)]  // wide F32: streaming kernel
    [InlineData(GgmlType.Q4_K, GgmlType.Q6_K, 512, 1)] // mixed types, as Q4_K_M's q/k/v
    [InlineData(GgmlType.F16, GgmlType.Q8_0, 512, 1)]
    [InlineData(GgmlType.Q8_0, GgmlType.Q8_0, 512, 3)] // several tokens: one product after another
    public void Fused_products_equal_separate_ones(GgmlType a, GgmlType b, int cols, int n)
    {
        // q/k/v-like: 3 matrices sharing x, the last two smaller; one pool dispatch must give bit-identical results.
        Assert.True(MatMul.DecodeThreads(GgmlType.Q8_0, (3080 + 770 + 770) * (long)cols, 0, 2) == 2, "the fused dispatch must be split");
        // Large enough that decode splits them across threads (MatMul.DecodeThreads).
        var wq = RandomMatrix(a, 3080, cols, seed: 1, out var p0);
        var wk = RandomMatrix(a, 770, cols, seed: 2, out var p1);
        var wv = RandomMatrix(b, 770, cols, seed: 3, out var p2);
        var x = Random(n * cols, seed: 4);
        WeightMatrix[] ws = [wq, wk, wv];
        int rows = 3080 + 770 + 770;
        var expected = new float[n * rows];
        int off = 0;
        foreach (var w in ws)
        {
            MatMul.MatMulRows(w, x, n, expected.AsSpan(off, n * w.Rows), 2);
            off += n * w.Rows;
        }
        foreach (int threads in new[] { 1, 2, 3 })
        {
            var y = new float[n * rows];
            MatMul.MatMulRowsFused(ws, x, n, y, threads);
            for (int i = 0; i < y.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(y[i]) == BitConverter.SingleToInt32Bits(expected[i]), $"{a}/{b} n={n} threads={threads} at {i}: {y[i]} vs {expected[i]}");
        }
        Assert.Throws<ArgumentException>(() => MatMul.MatMulRowsFused(ws, x, n, new float[n * rows - 1], 2));
        GC.KeepAlive(p0); GC.KeepAlive(p1); GC.KeepAlive(p2);
    }

    [Theory]
    [InlineData(GgmlType.F32, 256)]
    [InlineData(GgmlType.F16, 256)]
    [InlineData(GgmlType.BF16, 256)]
    [InlineData(GgmlType.Q8_0, 288)]
    [InlineData(GgmlType.Q4_0, 288)]
    [InlineData(GgmlType.Q4_K, 256)]
    [InlineData(GgmlType.Q6_K, 512)]
    public unsafe void MatVec_rows_do_not_depend_on_chunking_or_threads(GgmlType type, int cols)
    {
        // The decode driver takes a Dot4's rows from four quarters of long chunks (several chunks here, uneven quarters):
        // every row's sum must be bit-identical to that row multiplied alone, for any thread count.
        const int rows = 2103;
        var w = RandomMatrix(type, rows, cols, seed: 99, out var pin);
        var x = Random(cols, seed: 5);
        var alone = new float[rows];
        var one = new float[1];
        for (int r = 0; r < rows; r++)
        {
            var row = new WeightMatrix("row", type, 1, cols, w.Data + (nint)((long)r * w.RowBytes), w.RowBytes);
            MatMul.MatVec(row, x, one, 1);
            alone[r] = one[0];
        }
        foreach (int threads in new[] { 1, 2, 3 })
        {
            var y = new float[rows];
            MatMul.MatVec(w, x, y, threads);
            for (int r = 0; r < rows; r++)
                Assert.True(BitConverter.SingleToInt32Bits(y[r]) == BitConverter.SingleToInt32Bits(alone[r]),
                    $"{type} threads={threads} row {r}: {y[r]} vs {alone[r]} alone");
        }
        GC.KeepAlive(pin);
    }

    [Theory]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void Blocked_gemm_matches_reference_for_wide_matrices_and_many_tokens(GgmlType type)
    {
        // Wider than SmallBatch.MaxChunkedCols and more tokens than SmallBatch.MaxTokens: the blocked GEMM's path.
        const int rows = 19, cols = SmallBatch.MaxChunkedCols + 76;
        var w = RandomMatrix(type, rows, cols, seed: 5, out var pin);
        foreach (int n in new[] { SmallBatch.MaxTokens + 6, 2 * SmallBatch.MaxTokens + 2 })
        {
            var x = Random(n * cols, seed: n);
            var expected = new float[n * rows];
            MatMulReference.MatMulRows(w, x, n, expected);
            foreach (int threads in new[] { 1, 2 })
            {
                var y = new float[n * rows];
                MatMul.MatMulRows(w, x, n, y, threads);
                Assert.True(Nmse(y, expected) < Tolerance, $"{type} n={n} threads={threads}: nmse {Nmse(y, expected)}");
            }
        }
        GC.KeepAlive(pin);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MatMulRows_matches_reference(GgmlType type, int rows, int cols)
    {
        var w = RandomMatrix(type, rows, cols, seed: rows * 1000 + cols + 1, out var pin);
        foreach (int n in new[] { 1, 2, 3, 4, 8, 17 })
        {
            var x = Random(n * cols, seed: n);
            var expected = new float[n * rows];
            var f32 = new float[n * rows];
            // The kernels may round x (decode, and the K-quant integer prefill): exact against the reference that rounds
            // x the same way, within activation rounding of F32 activations.
            MatMulReference.MatMulRowsAsKernel(w, x, n, expected);
            MatMulReference.MatMulRows(w, x, n, f32);
            bool quantized = MatMul.QuantizesActivations(type, n);
            foreach (int threads in new[] { 1, 2 })
            {
                var y = new float[n * rows];
                MatMul.MatMulRows(w, x, n, y, threads);
                double e = Nmse(y, expected);
                Assert.True(e < Tolerance, $"{type} {rows}x{cols} n={n} threads={threads}: nmse {e}");
                // With 1-3 tokens the NMSE of the rounding rests on a few random x (with outliers) and is too noisy to bound;
                // one token is covered by MatVec_matches_reference.
                double f = Nmse(y, f32);
                Assert.True((quantized && n < 4) || f < (quantized ? ActivationRoundingTolerance : Tolerance), $"{type} {rows}x{cols} n={n} vs F32 activations: nmse {f}");
            }
            if (n == 3)
            {
                // The portable path keeps F32 activations.
                var y = new float[n * rows];
                MatMul.MatMulRows(w, x, n, y, 2, portable: true);
                Assert.True(Nmse(y, f32) < Tolerance, "portable path");
            }
        }
        GC.KeepAlive(pin);
    }

    [Fact]
    public void MatVec_handles_large_and_tiny_activations_for_F16()
    {
        // F16 prescales x by a power of two chosen from max|x|: check both ends of the range.
        var w = RandomMatrix(GgmlType.F16, 9, 64, seed: 3, out var pin);
        foreach (float scale in new[] { 1e-30f, 1e-3f, 1e6f, 1e20f })
        {
            var x = Random(64, seed: 11, scale);
            var expected = new float[9];
            var y = new float[9];
            MatMulReference.MatVec(w, x, expected);
            MatMul.MatVec(w, x, y, 1);
            Assert.True(Nmse(y, expected) < Tolerance, $"scale {scale}");
        }
        GC.KeepAlive(pin);
    }

    [Fact]
    public void F16_with_subnormal_and_zero_weights_is_exact()
    {
        // Tiny weights are half subnormals (and some zeros): the kernels route them through the exact conversion.
        var values = Random(13 * 96, seed: 21, scale: 1e-4f);
        for (int i = 0; i < values.Length; i += 7) values[i] = 0;
        var w = Matrix(GgmlType.F16, 13, 96, Quantizer.Quantize(GgmlType.F16, values), out var pin);
        var x = Random(5 * 96, seed: 22);
        var expected = new float[5 * 13];
        var y = new float[5 * 13];
        MatMulReference.MatMulRows(w, x, 5, expected);
        MatMul.MatMulRows(w, x, 5, y, 2);
        Assert.True(Nmse(y, expected) < Tolerance, "MatMulRows");
        MatMulReference.MatVec(w, x, expected);
        MatMul.MatVec(w, x, y, 2);
        Assert.True(Nmse(y.AsSpan(0, 13), expected.AsSpan(0, 13)) < Tolerance, "MatVec");
        GC.KeepAlive(pin);
    }

    [Fact]
    public unsafe void F16_decode_with_scattered_subnormals_matches_reference_cached_map_or_not()
    {
        // Normal weights with subnormal halves scattered in some rows only (as real F16 weights have a few): the decode
        // kernel takes the exact conversion only in the 32-column blocks its cached map marks, per row.
        const int rows = 1500, cols = 544;
        var rng = new Random(8);
        var values = Random(rows * cols, seed: 9, scale: 0.05f);
        for (int r = 0; r < rows; r += 3)
            for (int k = 0; k < 4; k++) values[r * cols + rng.Next(cols)] = (float)(rng.NextDouble() - 0.5) * 1e-5f; // subnormal in F16
        var bytes = Quantizer.Quantize(GgmlType.F16, values);
        int subnormals = 0;
        for (int i = 0; i < rows * cols; i++)
        {
            int h = BitConverter.ToUInt16(bytes, 2 * i) & 0x7FFF;
            if (h is > 0 and < 0x400) subnormals++;
        }
        Assert.True(subnormals > 1000, $"only {subnormals} subnormal halves");
        var w = Matrix(GgmlType.F16, rows, cols, bytes, out var pin);
        // The map marks exactly the blocks of 32 that hold a subnormal half.
        var map = Pare.Kernels.Formats.F16Kernel.SubnormalMap((byte*)w.Data, rows, cols, w.RowBytes)!;
        int words = Pare.Kernels.Formats.F16Kernel.MapWords(cols);
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < cols / 32; b++)
            {
                bool any = false;
                for (int i = 0; i < 32; i++) any |= (BitConverter.ToUInt16(bytes, 2 * (r * cols + 32 * b + i)) & 0x7FFF) is > 0 and < 0x400;
                Assert.True(any == ((map[r * words + b / 64] >> (b % 64) & 1) != 0), $"row {r} block {b}");
            }
        var mutable = new WeightMatrix("m", GgmlType.F16, rows, cols, w.Data, w.ByteLength) { Mutable = true };
        var x = Random(cols, seed: 10);
        var expected = new float[rows];
        MatMulReference.MatVec(w, x, expected);
        foreach (int threads in new[] { 1, 2 })
        {
            var y = new float[rows];
            var ym = new float[rows];
            MatMul.MatVec(w, x, y, threads);       // the matrix's cached subnormal map
            MatMul.MatVec(mutable, x, ym, threads); // maps built per call
            Assert.True(Nmse(y, expected) < 1e-10, $"threads={threads}: nmse {Nmse(y, expected)}");
            Assert.Equal(y, ym);
        }
        GC.KeepAlive(pin);
    }

    [Fact]
    public unsafe void F16_four_rows_with_subnormals_agree_with_reference_with_and_without_maps()
    {
        // Both F16 decode paths on every CPU: with subnormal maps (the exact conversion in marked blocks, taken where
        // float denormals are slow) and without (subnormal halves as float denormals, taken where they are free: AMD).
        if (!MatMul.Avx512) return; // the F16 decode kernel is AVX-512 code (as in SmallBatchTests, F32PanelsTests)
        const int cols = 550; // 17 blocks of 32 and a tail of 6
        var rng = new Random(31);
        var values = Random(4 * cols, seed: 32, scale: 0.05f);
        for (int i = 0; i < values.Length; i++)
            if (rng.NextDouble() < 0.1) values[i] = (float)(rng.NextDouble() - 0.5) * 1e-5f; // subnormal in F16
        for (int i = 0; i < values.Length; i += 13) values[i] = 0;
        var bytes = Quantizer.Quantize(GgmlType.F16, values);
        var w = Matrix(GgmlType.F16, 4, cols, bytes, out var pin);
        foreach (float scale in new[] { 1e-3f, 1f, 1e6f })
        {
            var x = Random(cols, seed: 33, scale);
            var expected = new float[4];
            MatMulReference.MatVec(w, x, expected);
            var prep = new float[Pare.Kernels.Formats.F16Kernel.PrepFloats(cols)];
            int words = Pare.Kernels.Formats.F16Kernel.MapWords(cols);
            var maps = new ulong[4 * words];
            var withMaps = new float[4];
            var without = new float[4];
            fixed (byte* pw = bytes)
            fixed (float* px = x, pp = prep, pm = withMaps, pn = without)
            fixed (ulong* m = maps)
            {
                Pare.Kernels.Formats.F16Kernel.Prepare(px, cols, pp);
                byte* r0 = pw, r1 = pw + 2 * cols, r2 = pw + 4 * cols, r3 = pw + 6 * cols;
                for (int r = 0; r < 4; r++) Pare.Kernels.Formats.F16Kernel.MapRow((ushort*)(pw + 2 * r * cols), cols, m + r * words);
                Assert.True(maps.Count(v => v != 0) == 4, "every row has marked blocks");
                Pare.Kernels.Formats.F16Kernel.Dot4Mapped(r0, r1, r2, r3, m, m + words, m + 2 * words, m + 3 * words, px, pp, cols, pm);
                Pare.Kernels.Formats.F16Kernel.Dot4Mapped(r0, r1, r2, r3, null, null, null, null, px, pp, cols, pn);
            }
            Assert.True(Nmse(withMaps, expected) < Tolerance, $"maps, x scale {scale}: nmse {Nmse(withMaps, expected)}");
            Assert.True(Nmse(without, expected) < Tolerance, $"no maps, x scale {scale}: nmse {Nmse(without, expected)}");
        }
        GC.KeepAlive(pin);
    }

    [Fact]
    public void Fast_half_conversion_is_exact_for_every_finite_half()
    {
        for (int h = 0; h < 65536; h++)
        {
            var half = BitConverter.UInt16BitsToHalf((ushort)h);
            if (!System.Half.IsFinite(half)) continue;
            Assert.Equal((float)half, Fp16.ToFloatFast((ushort)h));
        }
    }

    [Fact]
    public void Calls_from_several_threads_at_once_are_correct()
    {
        // The pool runs one job at a time; concurrent callers fall back to running on their own thread.
        var w = RandomMatrix(GgmlType.Q8_0, 64, 256, seed: 5, out var pin);
        var x = Random(256, seed: 6);
        var expected = new float[64];
        MatMulReference.MatVecAsKernel(w, x, expected);
        Parallel.For(0, 4, _ =>
        {
            var y = new float[64];
            for (int i = 0; i < 200; i++)
            {
                MatMul.MatVec(w, x, y, 2);
                Assert.True(Nmse(y, expected) < Tolerance);
            }
        });
        GC.KeepAlive(pin);
    }

    [Fact]
    public void Wrong_lengths_throw()
    {
        var w = RandomMatrix(GgmlType.F32, 4, 8, seed: 1, out var pin);
        Assert.Throws<ArgumentException>(() => MatMul.MatVec(w, new float[7], new float[4], 1));
        Assert.Throws<ArgumentException>(() => MatMul.MatMulRows(w, new float[16], 2, new float[7], 1));
        GC.KeepAlive(pin);
    }
}
