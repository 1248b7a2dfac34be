using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Pare.Kernels;
using Pare.Kernels.Sparse;
using Pare.Tensors;

namespace Pare.Tests.Pruning;

/// <summary>The compact format's kernels against the scalar reference and against the dense matrix they came from.</summary>
public unsafe class SparseKernelTests
{
    static (byte[] Dense, float[] Values) RandomSparse(GgmlType type, int rows, int cols, double sparsity, int seed)
    {
        var rng = new Random(seed);
        var v = new float[rows * cols];
        for (int i = 0; i < v.Length; i++) v[i] = rng.NextDouble() < sparsity ? 0 : (float)(rng.NextDouble() * 2 - 1) * 0.1f;
        var dense = Quantizer.Quantize(type, v);
        var back = new float[v.Length];
        for (int r = 0; r < rows; r++) Dequant.Row(type, dense.AsSpan((int)(r * GgmlTypeInfo.RowBytes(type, cols))), back.AsSpan(r * cols, cols));
        return (dense, back);
    }

    static SparseMatrix Open(byte[] blob, int rows, int cols, out byte[] pinned)
    {
        pinned = GC.AllocateArray<byte>(blob.Length, pinned: true);
        blob.CopyTo(pinned, 0);
        return SparseMatrix.Open("t", (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(pinned)), blob.Length, rows, cols);
    }

    [Theory]
    [InlineData(GgmlType.F16, 0.5, 1)]
    [InlineData(GgmlType.F16, 0.7, 1)]
    [InlineData(GgmlType.F16, 0.0, 5)]
    [InlineData(GgmlType.F16, 1.0, 1)]
    [InlineData(GgmlType.Q8_0, 0.5, 1)]
    [InlineData(GgmlType.Q8_0, 0.7, 1)]
    [InlineData(GgmlType.Q8_0, 0.0, 1)]
    [InlineData(GgmlType.Q8_0, 0.9, 6)]
    [InlineData(GgmlType.F32, 0.5, 1)]
    [InlineData(GgmlType.F32, 0.3, 7)]
    [InlineData(GgmlType.Q8_0, 0.5, 1, 544)] // an odd number of blocks (the Q8_0 masks cover two), two groups of 16
    [InlineData(GgmlType.Q8_0, 0.7, 3, 544)]
    [InlineData(GgmlType.F16, 0.6, 1, 544)]
    public void Fast_kernels_match_reference_and_dense(GgmlType type, double sparsity, int n, int cols = 320)
    {
        const int rows = 37;
        var (dense, values) = RandomSparse(type, rows, cols, sparsity, 42);
        var blob = SparseMatrix.Encode(type, rows, cols, dense);
        var m = Open(blob, rows, cols, out var keep);
        Assert.Equal(values.LongCount(v => v != 0), m.NonZeros);
        var row = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            m.DecodeRow(r, row);
            Assert.Equal(values.AsSpan(r * cols, cols).ToArray(), row);
        }
        var x = new float[n * cols];
        var rng = new Random(3);
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var yRef = new float[n * rows];
        SparseMatMul.MatMulRowsReference(m, x, n, yRef);
        var yFast = new float[n * rows];
        SparseMatMul.MatMulRows(m, x, n, yFast, threads: 2);
        var yPortable = new float[n * rows];
        SparseMatMul.MatMulRows(m, x, n, yPortable, threads: 2, portable: true);
        // What a machine without AVX-512 VBMI2 runs (Q8_0 decode: rows decoded to dense blocks and the dense kernel).
        var yNoVbmi2 = new float[n * rows];
        SparseMatMul.MatMulRows(m, x, n, yNoVbmi2, 2, SparseMatMul.Tier.WithoutVbmi2);
        // Through WeightMatrix and MatMul's dispatch, as the engine calls it.
        var wm = new WeightMatrix("t", rows, cols, m);
        var yDispatch = new float[n * rows];
        MatMul.MatMulRows(wm, x, n, yDispatch, 2);
        // The dense matrix the blob came from, through the dense reference.
        var dm = Kernels.KernelTestUtil.Matrix(type, rows, cols, dense, out var keepDense);
        var yDense = new float[n * rows];
        MatMulReference.MatMulRows(dm, x, n, yDense);
        // Q8_0 decode rounds x to int8 blocks, as the dense Q8_0 kernel does: the compact kernel must give exactly the
        // dense kernel's numbers on the dense matrix, and the dense reference that rounds x the same way.
        // Prefill (n > 1) runs the dense integer GEMM on rows decoded back to Q8_0 blocks: again exactly the dense numbers.
        bool quantized = type == GgmlType.Q8_0 && MatMul.QuantizesActivations(type, n);
        if (quantized)
        {
            var yDenseFast = new float[n * rows];
            MatMul.MatMulRows(dm, x, n, yDenseFast, 2);
            Assert.Equal(yDenseFast, yFast);
            Assert.Equal(yDenseFast, yDispatch);
            if (n == 1) Assert.Equal(yDenseFast, yNoVbmi2);
            if (n == 1)
            {
                var yAsKernel = new float[rows];
                MatMulReference.MatVecAsKernel(dm, x, yAsKernel);
                for (int i = 0; i < rows; i++) Assert.True(Math.Abs(yFast[i] - yAsKernel[i]) <= 1e-5 * (1 + Math.Abs(yAsKernel[i])), $"{i}: {yFast[i]} vs {yAsKernel[i]}");
            }
        }
        foreach (var y in quantized ? (n == 1 ? new[] { yPortable, yDense } : new[] { yPortable, yNoVbmi2, yDense }) : new[] { yFast, yPortable, yNoVbmi2, yDispatch, yDense })
            for (int i = 0; i < y.Length; i++) Assert.True(Math.Abs(y[i] - yRef[i]) <= 1e-5 * (1 + Math.Abs(yRef[i])), $"{i}: {y[i]} vs {yRef[i]}");
        GC.KeepAlive(keep); GC.KeepAlive(keepDense);
    }

    [Fact]
    public void Compact_bytes_per_weight_are_as_documented()
    {
        const int rows = 64, cols = 1024;
        foreach (var (type, s, expected) in new[] { (GgmlType.F16, 0.5, 1.125), (GgmlType.F16, 0.7, 0.725), (GgmlType.Q8_0, 0.5, (2 + 4 + 16) / 32.0) })
        {
            var v = new float[rows * cols];
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++) v[r * cols + c] = (c * 7919 % 1000) < s * 1000 ? 0 : 1 + c % 5;
            var blob = SparseMatrix.Encode(type, rows, cols, Quantizer.Quantize(type, v));
            double perWeight = (double)(blob.Length - SparseMatrix.HeaderBytes - 8 * (rows + 1) - SparseMatrix.TailPadding) / (rows * cols);
            Assert.Equal(expected, perWeight, 2);
        }
    }

    [Fact]
    public void Q8_0_quant_of_minus_128_stays_dense()
    {
        // The compact Q8_0 decode kernel negates quants, so a -128 quant (no quantizer writes one) is refused at encode
        // time (the repack then keeps the matrix dense) and at load time.
        const int rows = 4, cols = 64;
        var (dense, _) = RandomSparse(GgmlType.Q8_0, rows, cols, 0.5, 2);
        Assert.True(SparseMatrix.CanEncode(GgmlType.Q8_0, rows, cols, dense));
        var blob = SparseMatrix.Encode(GgmlType.Q8_0, rows, cols, dense);
        var bad = (byte[])dense.Clone();
        int q = Array.FindIndex(bad, 34 + 2, i => i != 0); // a non-zero quant of row 0's second block
        bad[q] = 0x80;
        Assert.False(SparseMatrix.CanEncode(GgmlType.Q8_0, rows, cols, bad));
        Assert.Throws<ArgumentException>(() => SparseMatrix.Encode(GgmlType.Q8_0, rows, cols, bad));
        // The same value patched into a valid blob: the row's packed quants start after its masks and scales.
        int valuesAt = (int)BitConverter.ToInt64(blob, SparseMatrix.HeaderBytes) + 8 + 2 * (cols / 32);
        Open(blob, rows, cols, out _);
        var badBlob = (byte[])blob.Clone(); badBlob[valuesAt] = 0x80;
        var e = Assert.Throws<InvalidModelException>(() => Open(badBlob, rows, cols, out _));
        Assert.Contains("-128", e.Message);
    }

    [Fact]
    public void Corrupt_blobs_are_rejected()
    {
        var (dense, _) = RandomSparse(GgmlType.F16, 4, 64, 0.5, 1);
        var blob = SparseMatrix.Encode(GgmlType.F16, 4, 64, dense);
        Assert.Throws<InvalidModelException>(() => Open(blob, 5, 64, out _));        // wrong shape
        var bad = (byte[])blob.Clone(); bad[0] ^= 1;
        Assert.Throws<InvalidModelException>(() => Open(bad, 4, 64, out _));         // magic
        bad = (byte[])blob.Clone(); bad[SparseMatrix.HeaderBytes + 8 * 5] ^= 0xFF;   // first row's mask: length no longer matches
        Assert.Throws<InvalidModelException>(() => Open(bad, 4, 64, out _));
        Assert.Throws<InvalidModelException>(() => Open(blob[..^1], 4, 64, out _));  // truncated
    }
}
