using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Pare.Training.Kernels;

/// <summary>
/// The two matrix products of a linear layer's backward pass, over F32 row-major data (the forward product X·Wᵀ is the
/// engine's <see cref="Pare.Kernels.MatMul.MatMulRows"/>):
/// <list type="bullet">
/// <item><see cref="InputGrad"/>: dX (n, in) = dY (n, out) · W (out, in)</item>
/// <item><see cref="WeightGrad"/>: dW (out, in) += dYᵀ (out, n) · X (n, in)</item>
/// </list>
/// Both keep a 4 x 64 tile of the result in sixteen AVX-512 registers and stream the shared dimension through it
/// (4 vector loads + 4 broadcasts feed 16 FMAs). Each output element is owned by one thread and summed in a fixed
/// order, so results are bitwise reproducible for any thread count or schedule. Without AVX-512 the scalar reference runs.
/// </summary>
public static unsafe class GradMatMul
{
    const int TileRows = 4, TileCols = 64;

    /// <summary>dX = dY · W (or dX += with <paramref name="accumulate"/>). dY: (n, outDim), W: (outDim, inDim), dX: (n, inDim).</summary>
    public static void InputGrad(ReadOnlySpan<float> dy, ReadOnlySpan<float> w, Span<float> dx, int n, int outDim, int inDim, bool accumulate, int threads)
    {
        Check(dy, (long)n * outDim, w, (long)outDim * inDim, dx, (long)n * inDim);
        if (!Vector512.IsHardwareAccelerated) { GradMatMulReference.InputGrad(dy, w, dx, n, outDim, inDim, accumulate); return; }
        fixed (float* pdy = dy, pw = w, pdx = dx)
        {
            // Tiles of 4 result rows (tokens) x 64 columns; jobs are row blocks so each thread writes its own rows.
            var job = new Job { A = pdy, B = pw, C = pdx, M = n, K = outDim, N = inDim, Accumulate = accumulate };
            int blocks = (n + TileRows - 1) / TileRows;
            Run(blocks, threads, &job, &InputGradBlock);
        }
    }

    /// <summary>dW += dYᵀ · X. dY: (n, outDim), X: (n, inDim), dW: (outDim, inDim).</summary>
    public static void WeightGrad(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, Span<float> dw, int n, int outDim, int inDim, int threads)
    {
        Check(dy, (long)n * outDim, x, (long)n * inDim, dw, (long)outDim * inDim);
        if (!Vector512.IsHardwareAccelerated) { GradMatMulReference.WeightGrad(dy, x, dw, n, outDim, inDim); return; }
        fixed (float* pdy = dy, px = x, pdw = dw)
        {
            var job = new Job { A = pdy, B = px, C = pdw, M = outDim, K = n, N = inDim, Accumulate = true };
            int blocks = (outDim + TileRows - 1) / TileRows;
            Run(blocks, threads, &job, &WeightGradBlock);
        }
    }

    struct Job
    {
        public float* A, B, C;
        public int M, K, N;
        public bool Accumulate;
    }

    /// <summary>Runs row blocks in fixed contiguous ranges, one per thread (the caller takes the first).</summary>
    static void Run(int blocks, int threads, Job* job, delegate*<Job*, int, int, void> body)
    {
        threads = Math.Clamp(threads, 1, Math.Max(1, blocks));
        if (threads == 1) { body(job, 0, blocks); return; }
        nint j = (nint)job;
        nint f = (nint)body;
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, i =>
        {
            int b0 = (int)((long)blocks * i / threads), b1 = (int)((long)blocks * (i + 1) / threads);
            ((delegate*<Job*, int, int, void>)f)((Job*)j, b0, b1);
        });
    }

    /// <summary>C[m, :] (=|+=) Σ_k A[m, k] · B[k, :] for the rows of blocks [b0, b1): A = dY, B = W.</summary>
    static void InputGradBlock(Job* job, int b0, int b1)
    {
        ref readonly Job j = ref *job;
        int lda = j.K, ldb = j.N, ldc = j.N;
        for (int blk = b0; blk < b1; blk++)
        {
            int m0 = blk * TileRows, mr = Math.Min(TileRows, j.M - m0);
            // Rows beyond the matrix reuse the last row (computed, never stored) so the tile code has no branches.
            float* a0 = j.A + (long)m0 * lda, a1 = j.A + (long)(m0 + Math.Min(1, mr - 1)) * lda;
            float* a2 = j.A + (long)(m0 + Math.Min(2, mr - 1)) * lda, a3 = j.A + (long)(m0 + Math.Min(3, mr - 1)) * lda;
            int c = 0;
            for (; c + TileCols <= j.N; c += TileCols)
                Tile4x64(a0, a1, a2, a3, 1, j.B + c, ldb, j.K, j.C + (long)m0 * ldc + c, ldc, mr, j.Accumulate);
            for (; c < j.N; c++)
                for (int r = 0; r < mr; r++)
                {
                    float* ar = j.A + (long)(m0 + r) * lda;
                    float s = 0;
                    for (int k = 0; k < j.K; k++) s += ar[k] * j.B[(long)k * ldb + c];
                    float* dst = j.C + (long)(m0 + r) * ldc + c;
                    *dst = j.Accumulate ? *dst + s : s;
                }
        }
    }

    /// <summary>C[m, :] += Σ_k A[k, m] · B[k, :] for the rows of blocks [b0, b1): A = dY (read transposed), B = X.</summary>
    static void WeightGradBlock(Job* job, int b0, int b1)
    {
        ref readonly Job j = ref *job;
        int lda = j.M, ldb = j.N, ldc = j.N;
        for (int blk = b0; blk < b1; blk++)
        {
            int m0 = blk * TileRows, mr = Math.Min(TileRows, j.M - m0);
            // A is read down its columns: element (k, m) sits at A + k * lda + m.
            float* a0 = j.A + m0, a1 = j.A + m0 + Math.Min(1, mr - 1), a2 = j.A + m0 + Math.Min(2, mr - 1), a3 = j.A + m0 + Math.Min(3, mr - 1);
            int c = 0;
            for (; c + TileCols <= j.N; c += TileCols)
                Tile4x64(a0, a1, a2, a3, lda, j.B + c, ldb, j.K, j.C + (long)m0 * ldc + c, ldc, mr, accumulate: true);
            for (; c < j.N; c++)
                for (int r = 0; r < mr; r++)
                {
                    float s = 0;
                    for (int k = 0; k < j.K; k++) s += j.A[(long)k * lda + m0 + r] * j.B[(long)k * ldb + c];
                    j.C[(long)(m0 + r) * ldc + c] += s;
                }
        }
    }

    /// <summary>
    /// C[r, 0..64) (=|+=) Σ_k a_r[k * strideA] · B[k, 0..64) for r &lt; 4 (rows ≥ <paramref name="rows"/> are not stored).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Tile4x64(float* a0, float* a1, float* a2, float* a3, int strideA, float* b, int ldb, int k, float* c, int ldc, int rows, bool accumulate)
    {
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        for (int i = 0; i < k; i++)
        {
            float* bi = b + (long)i * ldb;
            var b0 = Vector512.Load(bi); var b1 = Vector512.Load(bi + 16); var b2 = Vector512.Load(bi + 32); var b3 = Vector512.Load(bi + 48);
            long ai = (long)i * strideA;
            var a = Vector512.Create(a0[ai]);
            c00 = Vector512.FusedMultiplyAdd(a, b0, c00); c01 = Vector512.FusedMultiplyAdd(a, b1, c01);
            c02 = Vector512.FusedMultiplyAdd(a, b2, c02); c03 = Vector512.FusedMultiplyAdd(a, b3, c03);
            a = Vector512.Create(a1[ai]);
            c10 = Vector512.FusedMultiplyAdd(a, b0, c10); c11 = Vector512.FusedMultiplyAdd(a, b1, c11);
            c12 = Vector512.FusedMultiplyAdd(a, b2, c12); c13 = Vector512.FusedMultiplyAdd(a, b3, c13);
            a = Vector512.Create(a2[ai]);
            c20 = Vector512.FusedMultiplyAdd(a, b0, c20); c21 = Vector512.FusedMultiplyAdd(a, b1, c21);
            c22 = Vector512.FusedMultiplyAdd(a, b2, c22); c23 = Vector512.FusedMultiplyAdd(a, b3, c23);
            a = Vector512.Create(a3[ai]);
            c30 = Vector512.FusedMultiplyAdd(a, b0, c30); c31 = Vector512.FusedMultiplyAdd(a, b1, c31);
            c32 = Vector512.FusedMultiplyAdd(a, b2, c32); c33 = Vector512.FusedMultiplyAdd(a, b3, c33);
        }
        Store(c, c00, c01, c02, c03, accumulate);
        if (rows > 1) Store(c + ldc, c10, c11, c12, c13, accumulate);
        if (rows > 2) Store(c + 2L * ldc, c20, c21, c22, c23, accumulate);
        if (rows > 3) Store(c + 3L * ldc, c30, c31, c32, c33, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store(float* c, Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3, bool accumulate)
    {
        if (accumulate)
        {
            v0 += Vector512.Load(c); v1 += Vector512.Load(c + 16); v2 += Vector512.Load(c + 32); v3 += Vector512.Load(c + 48);
        }
        v0.Store(c); v1.Store(c + 16); v2.Store(c + 32); v3.Store(c + 48);
    }

    static void Check(ReadOnlySpan<float> a, long na, ReadOnlySpan<float> b, long nb, Span<float> c, long nc)
    {
        if (a.Length < na || b.Length < nb || c.Length < nc)
            throw new ArgumentException($"operand too short: have {a.Length}/{b.Length}/{c.Length}, need {na}/{nb}/{nc}");
    }

    /// <summary>Σ a[i]·b[i] in a fixed order (one 16-lane accumulator, then a fixed lane sum): reproducible.</summary>
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        ref float pa = ref MemoryMarshal.GetReference(a), pb = ref MemoryMarshal.GetReference(b);
        int n = a.Length, i = 0;
        float s = 0;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var acc = Vector512<float>.Zero;
            for (; i + 16 <= n; i += 16)
                acc = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref pa, (nuint)i), Vector512.LoadUnsafe(ref pb, (nuint)i), acc);
            s = Vector512.Sum(acc);
        }
        for (; i < n; i++) s += a[i] * b[i];
        return s;
    }

    /// <summary>y += alpha · x.</summary>
    public static void Axpy(float alpha, ReadOnlySpan<float> x, Span<float> y)
    {
        ref float px = ref MemoryMarshal.GetReference(x), py = ref MemoryMarshal.GetReference(y);
        int n = x.Length, i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(alpha);
            for (; i + 16 <= n; i += 16)
                Vector512.FusedMultiplyAdd(va, Vector512.LoadUnsafe(ref px, (nuint)i), Vector512.LoadUnsafe(ref py, (nuint)i)).StoreUnsafe(ref py, (nuint)i);
        }
        for (; i < n; i++) y[i] += alpha * x[i];
    }
}

/// <summary>Slow, obviously correct references of <see cref="GradMatMul"/> (double accumulation).</summary>
public static class GradMatMulReference
{
    public static void InputGrad(ReadOnlySpan<float> dy, ReadOnlySpan<float> w, Span<float> dx, int n, int outDim, int inDim, bool accumulate)
    {
        for (int t = 0; t < n; t++)
            for (int c = 0; c < inDim; c++)
            {
                double s = 0;
                for (int r = 0; r < outDim; r++) s += (double)dy[t * outDim + r] * w[r * inDim + c];
                dx[t * inDim + c] = accumulate ? dx[t * inDim + c] + (float)s : (float)s;
            }
    }

    public static void WeightGrad(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, Span<float> dw, int n, int outDim, int inDim)
    {
        for (int r = 0; r < outDim; r++)
            for (int c = 0; c < inDim; c++)
            {
                double s = 0;
                for (int t = 0; t < n; t++) s += (double)dy[t * outDim + r] * x[t * inDim + c];
                dw[r * inDim + c] += (float)s;
            }
    }
}
