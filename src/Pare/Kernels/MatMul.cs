using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Pare.Kernels.Formats;
using Pare.Tensors;

namespace Pare.Kernels;

/// <summary>Fast products of a stored-type weight matrix with F32 activations (F32 accumulation).</summary>
/// <remarks>
/// Decode (<see cref="MatVec"/>) is memory-bound: each thread streams four rows at once and dequantizes inside the
/// dot product. Prefill (<see cref="MatMulRows"/>) is compute-bound: each group of four rows is dequantized once
/// into a small per-thread buffer and then multiplied with every token, four tokens at a time (a 4x4 register tile).
/// Rows are split across threads in chunks handed out by <see cref="KernelThreadPool"/>. Without AVX-512 a portable
/// path (reference dequantization + <see cref="Vector{T}"/> dots) is used.
/// </remarks>
public static unsafe class MatMul
{
    /// <summary>Whether the AVX-512 kernels run on this machine.</summary>
    internal static bool Avx512 => Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Avx512BW.IsSupported;

    const int MatVecRowsPerChunk = 16;
    const int MatMulRowsPerChunk = 8;

    /// <summary>y[r] = sum_c W[r, c] * x[c]. x: (Cols), y: (Rows). Rows are split across <paramref name="threads"/>.</summary>
    public static void MatVec(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int threads) =>
        MatVec(w, x, y, threads, portable: false);

    /// <summary>Y[t, r] = sum_c W[r, c] * X[t, c] for t &lt; n. X: (n, Cols) row-major, Y: (n, Rows) row-major.</summary>
    public static void MatMulRows(WeightMatrix w, ReadOnlySpan<float> x, int n, Span<float> y, int threads) =>
        MatMulRows(w, x, n, y, threads, portable: false);

    internal static void MatVec(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int threads, bool portable)
    {
        Check(w, x, 1, y);
        threads = Math.Max(1, threads);
        if (w.Sparse is { } sparse) { Sparse.SparseMatMul.MatMulRows(sparse, x, 1, y, threads, portable); return; }
        if (portable || !Avx512) { Portable(w, x, 1, y, threads); return; }
        switch (w.Type)
        {
            case GgmlType.F32: MatVec<F32Kernel>(w, x, y, threads); break;
            case GgmlType.F16: MatVec<F16Kernel>(w, x, y, threads); break;
            case GgmlType.BF16: MatVec<BF16Kernel>(w, x, y, threads); break;
            case GgmlType.Q8_0: MatVec<Q8_0Kernel>(w, x, y, threads); break;
            case GgmlType.Q4_0: MatVec<Q4_0Kernel>(w, x, y, threads); break;
            case GgmlType.Q4_K: MatVec<Q4KKernel>(w, x, y, threads); break;
            case GgmlType.Q6_K: MatVec<Q6KKernel>(w, x, y, threads); break;
            default: throw new NotSupportedException($"matrix products with {w.Type} weights");
        }
    }

    internal static void MatMulRows(WeightMatrix w, ReadOnlySpan<float> x, int n, Span<float> y, int threads, bool portable)
    {
        Check(w, x, n, y);
        if (n == 0) return;
        threads = Math.Max(1, threads);
        if (w.Sparse is { } sparse) { Sparse.SparseMatMul.MatMulRows(sparse, x, n, y, threads, portable); return; }
        if (portable || !Avx512) { Portable(w, x, n, y, threads); return; }
        // One token is decode: the streaming kernel reads each weight once either way and needs no buffer.
        if (n == 1) { MatVec(w, x, y, threads, portable: false); return; }
        switch (w.Type)
        {
            case GgmlType.F32: MatMulRows<F32Kernel>(w, x, n, y, threads); break;
            case GgmlType.F16: MatMulRows<F16Kernel>(w, x, n, y, threads); break;
            case GgmlType.BF16: MatMulRows<BF16Kernel>(w, x, n, y, threads); break;
            case GgmlType.Q8_0: MatMulRows<Q8_0Kernel>(w, x, n, y, threads); break;
            case GgmlType.Q4_0: MatMulRows<Q4_0Kernel>(w, x, n, y, threads); break;
            case GgmlType.Q4_K: MatMulRows<Q4KKernel>(w, x, n, y, threads); break;
            case GgmlType.Q6_K: MatMulRows<Q6KKernel>(w, x, n, y, threads); break;
            default: throw new NotSupportedException($"matrix products with {w.Type} weights");
        }
    }

    static void Check(WeightMatrix w, ReadOnlySpan<float> x, int n, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        if (x.Length < (long)n * w.Cols) throw new ArgumentException($"x has {x.Length} values, needs {n} x {w.Cols}", nameof(x));
        if (y.Length < (long)n * w.Rows) throw new ArgumentException($"y has {y.Length} values, needs {n} x {w.Rows}", nameof(y));
    }

    /// <summary>Everything a chunk of rows needs; lives on the caller's stack while the pool runs.</summary>
    struct Job
    {
        public byte* W;
        public long RowBytes;
        public float* X;
        public float* Prep;
        public float* Y;
        public int Rows, Cols, N;
        public GgmlType Type;
    }

    static void MatVec<TK>(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int threads) where TK : IRowKernel
    {
        int prepFloats = TK.PrepFloats(w.Cols);
        float* prep = prepFloats > 0 ? ThreadBuffers.Prep(prepFloats) : null;
        fixed (float* px = x, py = y)
        {
            if (prepFloats > 0) TK.Prepare(px, w.Cols, prep);
            var job = new Job { W = (byte*)w.Data, RowBytes = w.RowBytes, X = px, Prep = prep, Y = py, Rows = w.Rows, Cols = w.Cols, N = 1 };
            int chunks = (w.Rows + MatVecRowsPerChunk - 1) / MatVecRowsPerChunk;
            KernelThreadPool.Shared.Run(&MatVecChunk<TK>, &job, chunks, threads);
        }
    }

    static void MatVecChunk<TK>(void* ctx, int chunk) where TK : IRowKernel
    {
        ref readonly Job j = ref *(Job*)ctx;
        int r0 = chunk * MatVecRowsPerChunk, r1 = Math.Min(r0 + MatVecRowsPerChunk, j.Rows);
        float* res = stackalloc float[4];
        for (int r = r0; r < r1; r += 4)
        {
            // Four rows in flight; a short last group repeats its last row rather than branching in the kernel.
            int last = r1 - 1;
            byte* w0 = j.W + r * j.RowBytes;
            byte* w1 = j.W + Math.Min(r + 1, last) * j.RowBytes;
            byte* w2 = j.W + Math.Min(r + 2, last) * j.RowBytes;
            byte* w3 = j.W + Math.Min(r + 3, last) * j.RowBytes;
            TK.Dot4(w0, w1, w2, w3, j.X, j.Prep, j.Cols, res);
            for (int k = 0; k < 4 && r + k < r1; k++) j.Y[r + k] = res[k];
        }
    }

    static void MatMulRows<TK>(WeightMatrix w, ReadOnlySpan<float> x, int n, Span<float> y, int threads) where TK : IRowKernel
    {
        fixed (float* px = x, py = y)
        {
            var job = new Job { W = (byte*)w.Data, RowBytes = w.RowBytes, X = px, Y = py, Rows = w.Rows, Cols = w.Cols, N = n };
            int chunks = (w.Rows + MatMulRowsPerChunk - 1) / MatMulRowsPerChunk;
            KernelThreadPool.Shared.Run(&MatMulChunk<TK>, &job, chunks, threads);
        }
    }

    static void MatMulChunk<TK>(void* ctx, int chunk) where TK : IRowKernel
    {
        ref readonly Job j = ref *(Job*)ctx;
        int r0 = chunk * MatMulRowsPerChunk, r1 = Math.Min(r0 + MatMulRowsPerChunk, j.Rows);
        int cols = j.Cols;
        float* buf = typeof(TK) == typeof(F32Kernel) ? null : ThreadBuffers.Rows(4 * cols);
        float** wr = stackalloc float*[4];
        float** xr = stackalloc float*[4];
        float* res = stackalloc float[16];
        for (int r = r0; r < r1; r += 4)
        {
            int nr = Math.Min(4, r1 - r);
            for (int k = 0; k < 4; k++)
            {
                if (k >= nr) { wr[k] = wr[0]; continue; }
                byte* src = j.W + (r + k) * j.RowBytes;
                if (typeof(TK) == typeof(F32Kernel)) wr[k] = (float*)src;
                else { TK.DequantRow(src, buf + k * cols, cols); wr[k] = buf + k * cols; }
            }
            for (int t = 0; t < j.N; t += 4)
            {
                int nt = Math.Min(4, j.N - t);
                for (int b = 0; b < 4; b++) xr[b] = j.X + (long)(t + Math.Min(b, nt - 1)) * cols;
                Tile4x4(wr, xr, cols, res);
                for (int b = 0; b < nt; b++)
                    for (int a = 0; a < nr; a++)
                        j.Y[(long)(t + b) * j.Rows + r + a] = res[4 * b + a];
            }
        }
    }

    /// <summary>res[4 * b + a] = dot(w[a], x[b]) for a 4x4 tile: 8 loads feed 16 FMAs per 16 columns.</summary>
    static void Tile4x4(float** w, float** x, int cols, float* res)
    {
        float* w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
        float* x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        int i = 0;
        for (; i + 16 <= cols; i += 16)
        {
            var a0 = Vector512.Load(w0 + i); var a1 = Vector512.Load(w1 + i);
            var a2 = Vector512.Load(w2 + i); var a3 = Vector512.Load(w3 + i);
            var b = Vector512.Load(x0 + i);
            c00 = Vector512.FusedMultiplyAdd(a0, b, c00); c01 = Vector512.FusedMultiplyAdd(a1, b, c01);
            c02 = Vector512.FusedMultiplyAdd(a2, b, c02); c03 = Vector512.FusedMultiplyAdd(a3, b, c03);
            b = Vector512.Load(x1 + i);
            c10 = Vector512.FusedMultiplyAdd(a0, b, c10); c11 = Vector512.FusedMultiplyAdd(a1, b, c11);
            c12 = Vector512.FusedMultiplyAdd(a2, b, c12); c13 = Vector512.FusedMultiplyAdd(a3, b, c13);
            b = Vector512.Load(x2 + i);
            c20 = Vector512.FusedMultiplyAdd(a0, b, c20); c21 = Vector512.FusedMultiplyAdd(a1, b, c21);
            c22 = Vector512.FusedMultiplyAdd(a2, b, c22); c23 = Vector512.FusedMultiplyAdd(a3, b, c23);
            b = Vector512.Load(x3 + i);
            c30 = Vector512.FusedMultiplyAdd(a0, b, c30); c31 = Vector512.FusedMultiplyAdd(a1, b, c31);
            c32 = Vector512.FusedMultiplyAdd(a2, b, c32); c33 = Vector512.FusedMultiplyAdd(a3, b, c33);
        }
        res[0] = Vector512.Sum(c00); res[1] = Vector512.Sum(c01); res[2] = Vector512.Sum(c02); res[3] = Vector512.Sum(c03);
        res[4] = Vector512.Sum(c10); res[5] = Vector512.Sum(c11); res[6] = Vector512.Sum(c12); res[7] = Vector512.Sum(c13);
        res[8] = Vector512.Sum(c20); res[9] = Vector512.Sum(c21); res[10] = Vector512.Sum(c22); res[11] = Vector512.Sum(c23);
        res[12] = Vector512.Sum(c30); res[13] = Vector512.Sum(c31); res[14] = Vector512.Sum(c32); res[15] = Vector512.Sum(c33);
        for (; i < cols; i++)
            for (int b = 0; b < 4; b++)
                for (int a = 0; a < 4; a++)
                    res[4 * b + a] += w[a][i] * x[b][i];
    }

    // ---- Portable path: reference dequantization of each row, then Vector<float> dots with every token. ----

    static void Portable(WeightMatrix w, ReadOnlySpan<float> x, int n, Span<float> y, int threads)
    {
        fixed (float* px = x, py = y)
        {
            var job = new Job { W = (byte*)w.Data, RowBytes = w.RowBytes, X = px, Y = py, Rows = w.Rows, Cols = w.Cols, N = n, Type = w.Type };
            int chunks = (w.Rows + MatVecRowsPerChunk - 1) / MatVecRowsPerChunk;
            KernelThreadPool.Shared.Run(&PortableChunk, &job, chunks, threads);
        }
    }

    static void PortableChunk(void* ctx, int chunk)
    {
        ref readonly Job j = ref *(Job*)ctx;
        int r0 = chunk * MatVecRowsPerChunk, r1 = Math.Min(r0 + MatVecRowsPerChunk, j.Rows);
        var row = new Span<float>(ThreadBuffers.Rows(j.Cols), j.Cols);
        for (int r = r0; r < r1; r++)
        {
            Dequant.Row(j.Type, new ReadOnlySpan<byte>(j.W + r * j.RowBytes, checked((int)j.RowBytes)), row);
            for (int t = 0; t < j.N; t++)
                j.Y[(long)t * j.Rows + r] = DotPortable(row, new ReadOnlySpan<float>(j.X + (long)t * j.Cols, j.Cols));
        }
    }

    internal static float DotPortable(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var va = MemoryMarshal.Cast<float, Vector<float>>(a);
        var vb = MemoryMarshal.Cast<float, Vector<float>>(b);
        var acc = Vector<float>.Zero;
        for (int i = 0; i < va.Length; i++) acc += va[i] * vb[i];
        float s = Vector.Sum(acc);
        for (int i = va.Length * Vector<float>.Count; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }
}

/// <summary>Per-thread scratch buffers on the pinned heap: grown on demand, then reused, so calls do not allocate.</summary>
internal static unsafe class ThreadBuffers
{
    [ThreadStatic] static float[]? t_prep;
    [ThreadStatic] static float[]? t_rows;

    /// <summary>Activation data prepared by the calling thread for one product.</summary>
    public static float* Prep(int floats) => Get(ref t_prep, floats);

    /// <summary>Dequantized rows of the current thread's chunk.</summary>
    public static float* Rows(int floats) => Get(ref t_rows, floats);

    static float* Get(ref float[]? buf, int floats)
    {
        if (buf is null || buf.Length < floats)
            buf = GC.AllocateUninitializedArray<float>(Math.Max(floats, 64) + 16, pinned: true);
        return (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(buf));
    }
}

/// <summary>Slow, obviously correct references: dequantize a row, then a plain dot product.</summary>
public static class MatMulReference
{
    public static void MatVec(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y) => MatMulRows(w, x, 1, y);

    public static void MatMulRows(WeightMatrix w, ReadOnlySpan<float> x, int n, Span<float> y)
    {
        var row = new float[w.Cols];
        for (int r = 0; r < w.Rows; r++)
        {
            Dequant.Row(w.Type, w.Row(r), row);
            for (int t = 0; t < n; t++)
            {
                var xt = x.Slice(t * w.Cols, w.Cols);
                double s = 0;
                for (int c = 0; c < w.Cols; c++) s += (double)row[c] * xt[c];
                y[t * w.Rows + r] = (float)s;
            }
        }
    }
}
