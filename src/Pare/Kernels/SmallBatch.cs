using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Pare.Kernels.Formats;
using Pare.Tensors;

namespace Pare.Kernels;

/// <summary>
/// Products of F32, F16 or BF16 weights with a few tokens (2 &lt;= n &lt;= <see cref="MaxTokens"/>: the token tree of
/// speculative decoding), streaming the weights once as decode does: each thread takes 16 rows at a time, 8 in
/// flight; a group of 8 rows (F16/BF16 first dequantized into an L1-resident per-thread buffer) is multiplied with every
/// token while it is hot, in 4-row x 4-token tiles (8 x 2 for a last one or two tokens). A tile keeps its 16 dot
/// products in registers and folds them into one vector with a shuffle tree (<see cref="Reduce"/>, about 3 instructions
/// per output instead of a horizontal sum each), so the cost per token is little more than its 2 x rows x cols flops.
/// </summary>
internal static unsafe class SmallBatch
{
    /// <summary>
    /// Largest token count this path takes; more tokens (prefill) go to the blocked GEMM of <see cref="MatMul"/>. Measured
    /// (F32, one thread, CPU time): 2.5-3.5x faster than the GEMM at 8192 x 128 for 16-64 tokens, 1.2-1.7x at 2048 x 2048
    /// for 8-32 tokens and level at 64.
    /// </summary>
    public const int MaxTokens = 64;

    /// <summary>
    /// Matrices at most this wide take longer products too, in chunks of <see cref="MaxTokens"/> (MatMul decides).
    /// </summary>
    public const int MaxChunkedCols = 1024;

    /// <summary>Whether <see cref="MatMulRows"/> handles this weight type (with AVX-512).</summary>
    public static bool Supports(GgmlType type) => type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16;

    const int RowsPerChunk = 16, GroupRows = 8;

    struct Job
    {
        public byte* W;
        public long RowBytes;
        public float* X;
        public float* Y;
        public int Rows, Cols, N;
    }

    /// <summary>Y[t, r] = sum_c W[r, c] * X[t, c] for t &lt; n, as <see cref="MatMul.MatMulRows(WeightMatrix, ReadOnlySpan{float}, int, Span{float}, int)"/>.</summary>
    public static void MatMulRows(WeightMatrix w, float* x, int n, float* y, int threads)
    {
        var job = new Job { W = (byte*)w.Data, RowBytes = w.RowBytes, X = x, Y = y, Rows = w.Rows, Cols = w.Cols, N = n };
        int chunks = (w.Rows + RowsPerChunk - 1) / RowsPerChunk;
        switch (w.Type)
        {
            case GgmlType.F32: KernelThreadPool.Shared.Run(&Chunk<F32Kernel>, &job, chunks, threads); break;
            case GgmlType.F16: KernelThreadPool.Shared.Run(&Chunk<F16Kernel>, &job, chunks, threads); break;
            case GgmlType.BF16: KernelThreadPool.Shared.Run(&Chunk<BF16Kernel>, &job, chunks, threads); break;
            default: throw new NotSupportedException($"small-batch products with {w.Type} weights");
        }
    }

    static void Chunk<TK>(void* ctx, int chunk) where TK : IRowKernel
    {
        ref readonly Job j = ref *(Job*)ctx;
        int r0 = chunk * RowsPerChunk, r1 = Math.Min(r0 + RowsPerChunk, j.Rows);
        int cols = j.Cols, n = j.N;
        bool f32 = typeof(TK) == typeof(F32Kernel);
        float* buf = f32 ? null : ThreadBuffers.Rows(GroupRows * cols);
        float** wr = stackalloc float*[GroupRows];
        float** xr = stackalloc float*[4];
        float* res = stackalloc float[16];
        for (int g = r0; g < r1; g += GroupRows)
        {
            // A short group repeats its last row; the padding rows' results are dropped.
            int nr = Math.Min(GroupRows, r1 - g);
            for (int a = 0; a < GroupRows; a++)
            {
                byte* src = j.W + (g + Math.Min(a, nr - 1)) * j.RowBytes;
                if (f32) wr[a] = (float*)src;
                else
                {
                    if (a < nr) TK.DequantRow(src, buf + a * cols, cols);
                    wr[a] = buf + Math.Min(a, nr - 1) * cols;
                }
            }
            var o = new Out { Y = j.Y, Rows = j.Rows, Cols = cols, Row0 = g, ValidRows = nr, W = wr, X = xr, Res = res };
            for (int t = 0; t < n;)
            {
                int nt = n - t;
                if (nt >= 3)
                {
                    // Four tokens (a short last group repeats its last token).
                    for (int b = 0; b < 4; b++) xr[b] = j.X + (long)(t + Math.Min(b, nt - 1)) * cols;
                    Tile4x4(wr, xr, cols, res);
                    o.Emit(0, 4, t, nt);
                    if (nr > 4)
                    {
                        Tile4x4(wr + 4, xr, cols, res);
                        o.Emit(4, 4, t, nt);
                    }
                    t += 4;
                }
                else
                {
                    for (int b = 0; b < 2; b++) xr[b] = j.X + (long)(t + Math.Min(b, nt - 1)) * cols;
                    Tile8x2(wr, xr, cols, res);
                    o.Emit(0, 8, t, nt);
                    t += 2;
                }
            }
        }
    }

    /// <summary>Writes a tile's results (plus the columns past the last multiple of 16) into Y.</summary>
    struct Out
    {
        public float* Y, Res;
        public float** W, X;
        public int Rows, Cols, Row0, ValidRows;

        /// <summary>Res[b * tileRows + a] = dot(row a0 + a, token t + b), for tokens below validTokens.</summary>
        public readonly void Emit(int a0, int tileRows, int t, int validTokens)
        {
            int c0 = Cols & ~15, na = Math.Min(tileRows, ValidRows - a0);
            for (int b = 0; b < validTokens && b < 16 / tileRows; b++)
            {
                float* dst = Y + (long)(t + b) * Rows + Row0 + a0, src = Res + b * tileRows;
                if (c0 == Cols)
                    for (int a = 0; a < na; a++) dst[a] = src[a];
                else
                    for (int a = 0; a < na; a++)
                    {
                        float* w = W[a0 + a], x = X[b];
                        float s = src[a];
                        for (int c = c0; c < Cols; c++) s += w[c] * x[c];
                        dst[a] = s;
                    }
            }
        }
    }

    /// <summary>
    /// One vector holding the 16-lane sums of 16 vectors, transposed: lane 4l + j holds the sum of c(4j + l). 45 instructions.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Reduce(Vector512<float> c0, Vector512<float> c1, Vector512<float> c2, Vector512<float> c3,
        Vector512<float> c4, Vector512<float> c5, Vector512<float> c6, Vector512<float> c7,
        Vector512<float> c8, Vector512<float> c9, Vector512<float> c10, Vector512<float> c11,
        Vector512<float> c12, Vector512<float> c13, Vector512<float> c14, Vector512<float> c15)
    {
        // 16 -> 8: each pair's 128-bit quarters 0+2 and 1+3 (8 partials per source).
        var d0 = Halves(c0, c1); var d1 = Halves(c2, c3); var d2 = Halves(c4, c5); var d3 = Halves(c6, c7);
        var d4 = Halves(c8, c9); var d5 = Halves(c10, c11); var d6 = Halves(c12, c13); var d7 = Halves(c14, c15);
        // 8 -> 4: one source per 128-bit lane, 4 partials each.
        var e0 = Quarters(d0, d1); var e1 = Quarters(d2, d3); var e2 = Quarters(d4, d5); var e3 = Quarters(d6, d7);
        // 4 -> 2 -> 1 within 128-bit lanes.
        var f0 = Avx512F.UnpackLow(e0, e1) + Avx512F.UnpackHigh(e0, e1);
        var f1 = Avx512F.UnpackLow(e2, e3) + Avx512F.UnpackHigh(e2, e3);
        return Avx512F.Shuffle(f0, f1, 0x44) + Avx512F.Shuffle(f0, f1, 0xEE);

        static Vector512<float> Halves(Vector512<float> a, Vector512<float> b) =>
            Avx512F.Shuffle4x128(a, b, 0x44) + Avx512F.Shuffle4x128(a, b, 0xEE);
        static Vector512<float> Quarters(Vector512<float> a, Vector512<float> b) =>
            Avx512F.Shuffle4x128(a, b, 0x88) + Avx512F.Shuffle4x128(a, b, 0xDD);
    }

    /// <summary>res[4b + a] = dot(w[a], x[b]) over the columns up to a multiple of 16.</summary>
    static void Tile4x4(float** w, float** x, int cols, float* res)
    {
        float* w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
        float* x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        for (int i = 0; i + 16 <= cols; i += 16)
        {
            var a0 = Vector512.Load(w0 + i); var a1 = Vector512.Load(w1 + i);
            var a2 = Vector512.Load(w2 + i); var a3 = Vector512.Load(w3 + i);
            Fma4(a0, a1, a2, a3, Vector512.Load(x0 + i), ref c00, ref c10, ref c20, ref c30);
            Fma4(a0, a1, a2, a3, Vector512.Load(x1 + i), ref c01, ref c11, ref c21, ref c31);
            Fma4(a0, a1, a2, a3, Vector512.Load(x2 + i), ref c02, ref c12, ref c22, ref c32);
            Fma4(a0, a1, a2, a3, Vector512.Load(x3 + i), ref c03, ref c13, ref c23, ref c33);
        }
        // Reduce's transpose puts row a, token b in lane 4b + a.
        Reduce(c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33).Store(res);
    }

    /// <summary>res[8b + a] = dot(w[a], x[b]) for 8 rows and 2 tokens (columns as <see cref="Tile4x4"/>).</summary>
    static void Tile8x2(float** w, float** x, int cols, float* res)
    {
        float* x0 = x[0], x1 = x[1];
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector512<float> c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default;
        Vector512<float> c60 = default, c61 = default, c70 = default, c71 = default;
        float* w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6], w7 = w[7];
        for (int i = 0; i + 16 <= cols; i += 16)
        {
            var b0 = Vector512.Load(x0 + i); var b1 = Vector512.Load(x1 + i);
            Fma2x2(b0, b1, Vector512.Load(w0 + i), Vector512.Load(w1 + i), ref c00, ref c01, ref c10, ref c11);
            Fma2x2(b0, b1, Vector512.Load(w2 + i), Vector512.Load(w3 + i), ref c20, ref c21, ref c30, ref c31);
            Fma2x2(b0, b1, Vector512.Load(w4 + i), Vector512.Load(w5 + i), ref c40, ref c41, ref c50, ref c51);
            Fma2x2(b0, b1, Vector512.Load(w6 + i), Vector512.Load(w7 + i), ref c60, ref c61, ref c70, ref c71);
        }
        // Passed so that Reduce's transpose puts row a, token b in lane 8b + a.
        Reduce(c00, c40, c01, c41, c10, c50, c11, c51, c20, c60, c21, c61, c30, c70, c31, c71).Store(res);
    }

    /// <summary>c_k += a_k * b for four rows sharing one token vector b.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Fma4(Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3, Vector512<float> b,
        ref Vector512<float> c0, ref Vector512<float> c1, ref Vector512<float> c2, ref Vector512<float> c3)
    {
        c0 = Vector512.FusedMultiplyAdd(a0, b, c0); c1 = Vector512.FusedMultiplyAdd(a1, b, c1);
        c2 = Vector512.FusedMultiplyAdd(a2, b, c2); c3 = Vector512.FusedMultiplyAdd(a3, b, c3);
    }

    /// <summary>Two rows times two tokens: c00 += a0 b0, c01 += a0 b1, c10 += a1 b0, c11 += a1 b1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Fma2x2(Vector512<float> b0, Vector512<float> b1, Vector512<float> a0, Vector512<float> a1,
        ref Vector512<float> c00, ref Vector512<float> c01, ref Vector512<float> c10, ref Vector512<float> c11)
    {
        c00 = Vector512.FusedMultiplyAdd(a0, b0, c00); c01 = Vector512.FusedMultiplyAdd(a0, b1, c01);
        c10 = Vector512.FusedMultiplyAdd(a1, b0, c10); c11 = Vector512.FusedMultiplyAdd(a1, b1, c11);
    }
}
