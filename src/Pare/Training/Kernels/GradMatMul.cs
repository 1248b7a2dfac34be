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
    const int TileRows = Gemm.TileRows;

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

    /// <summary>
    /// The shared dimension is walked in chunks of this many: the chunk of B (KChunk × up to a few hundred columns) stays
    /// in L2 while every row block of the thread's range passes over it. Chunk boundaries are fixed, so the summation
    /// order (chunk partial sums added in chunk order) does not depend on threads.
    /// </summary>
    const int KChunk = 256;

    /// <summary>dX rows of blocks [b0, b1): dX[m, :] (=|+=) Σ_k dY[m, k] · W[k, :].</summary>
    static void InputGradBlock(Job* job, int b0, int b1)
    {
        ref readonly Job j = ref *job;
        int m0 = b0 * TileRows, m1 = Math.Min(j.M, b1 * TileRows);
        for (int k0 = 0; k0 < j.K; k0 += KChunk)
            Gemm.Rows(m0, m1, j.N, Math.Min(KChunk, j.K - k0), j.A + k0, j.K, 1, j.B + (long)k0 * j.N, j.N, j.C, j.N, j.Accumulate || k0 > 0);
    }

    /// <summary>dW rows of blocks [b0, b1): dW[m, :] += Σ_k dY[k, m] · X[k, :] (dY read transposed).</summary>
    static void WeightGradBlock(Job* job, int b0, int b1)
    {
        ref readonly Job j = ref *job;
        int m0 = b0 * TileRows, m1 = Math.Min(j.M, b1 * TileRows);
        for (int k0 = 0; k0 < j.K; k0 += KChunk)
            Gemm.Rows(m0, m1, j.N, Math.Min(KChunk, j.K - k0), j.A + (long)k0 * j.M, 1, j.M, j.B + (long)k0 * j.N, j.N, j.C, j.N, accumulate: true);
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

    /// <summary>In-place softmax(scale · x), subtracting the maximum first (fixed order, reproducible).</summary>
    public static void SoftmaxInPlace(Span<float> x, float scale = 1f)
    {
        ref float p = ref MemoryMarshal.GetReference(x);
        int n = x.Length, i = 0;
        float max = Pare.Kernels.Ops.Max(x);
        float sum = 0;
        // exp(scale · (x − max)): the maximum of scale · x for scale > 0.
        if (Vector512.IsHardwareAccelerated)
        {
            var vmax = Vector512.Create(max);
            var vs = Vector512.Create(scale);
            var acc = Vector512<float>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                var e = Vector512.Exp((Vector512.LoadUnsafe(ref p, (nuint)i) - vmax) * vs);
                e.StoreUnsafe(ref p, (nuint)i);
                acc += e;
            }
            sum = Vector512.Sum(acc);
        }
        for (; i < n; i++) { x[i] = MathF.Exp((x[i] - max) * scale); sum += x[i]; }
        float inv = 1f / sum;
        i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var vi = Vector512.Create(inv);
            for (; i + 16 <= n; i += 16) (Vector512.LoadUnsafe(ref p, (nuint)i) * vi).StoreUnsafe(ref p, (nuint)i);
        }
        for (; i < n; i++) x[i] *= inv;
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
