using System.Runtime.Intrinsics;
using Pare.Tensors;

namespace Pare.Kernels;

/// <summary>
/// F32 weights repacked for products with a few tokens: panels of 16 rows, column-major inside a panel
/// (panel[c * 16 + l] = W[16 * panel + l, c]; a last partial panel is zero-padded).
/// </summary>
/// <remarks>
/// Why: the row-major small-batch kernel (<see cref="SmallBatch"/>) must fold every 16-lane dot product with a shuffle
/// tree, which on narrow matrices (a small model's 256 columns) costs as much as the multiply-adds. In a panel, one
/// vector holds column c of 16 rows, so y[t, 16 rows] accumulates broadcast(x[t, c]) x that vector with no reduction
/// at all, and every token of the tree reuses the loaded vector: measured 1.6-2x faster for 8 tokens on pare-ref's
/// matrices. Built once per matrix on first use (a copy: the mapped row-major weights stay for decode and for
/// everything else that reads rows), for F32 matrices at most <see cref="SmallBatch.MaxChunkedCols"/> wide.
/// </remarks>
internal sealed unsafe class F32Panels
{
    public const int Lanes = 16;

    readonly float[] _data; // pinned: kernels hold raw pointers while the pool runs

    public int Rows { get; }
    public int Cols { get; }
    public int Panels { get; }

    F32Panels(int rows, int cols)
    {
        Rows = rows; Cols = cols; Panels = (rows + Lanes - 1) / Lanes;
        _data = GC.AllocateUninitializedArray<float>(Panels * Lanes * cols, pinned: true);
    }

    /// <summary>Whether a matrix gets panels: F32, not sparse, narrow, not <see cref="WeightMatrix.Mutable"/>, with AVX-512.</summary>
    public static bool Applies(WeightMatrix w) =>
        w.Type == GgmlType.F32 && w.Sparse == null && !w.Mutable && w.Cols <= SmallBatch.MaxChunkedCols && MatMul.Avx512;

    /// <summary>Repacks a row-major F32 matrix.</summary>
    public static F32Panels Pack(WeightMatrix w)
    {
        if (w.Type != GgmlType.F32) throw new ArgumentException("panels hold F32 weights", nameof(w));
        var p = new F32Panels(w.Rows, w.Cols);
        int cols = w.Cols;
        fixed (float* dst = p._data)
            for (int panel = 0; panel < p.Panels; panel++)
            {
                float* pd = dst + (long)panel * Lanes * cols;
                for (int l = 0; l < Lanes; l++)
                {
                    int r = panel * Lanes + l;
                    float* src = r < w.Rows ? (float*)(w.Data + (long)r * w.RowBytes) : null;
                    for (int c = 0; c < cols; c++) pd[c * Lanes + l] = src == null ? 0f : src[c];
                }
            }
        return p;
    }

    internal struct Job
    {
        public float* P, X, Y;
        public int Rows, Cols, Panels, N;
    }

    const int PanelsPerChunk = 4, TokensPerTile = 8;

    /// <summary>Y[t, r] = sum_c W[r, c] * X[t, c] for t &lt; n. X: (n, Cols), Y: (n, Rows), row-major.</summary>
    public void MatMulRows(float* x, int n, float* y, int threads)
    {
        Job job;
        var w = Plan(x, n, y, &job);
        KernelThreadPool.Shared.Run(w.Fn, w.Ctx, w.Chunks, threads);
    }

    /// <summary>Fills <paramref name="job"/> (which must live until the work has run) and returns the pool work of the product.</summary>
    public MatMul.PoolWork Plan(float* x, int n, float* y, Job* job)
    {
        // _data is on the pinned heap: its address stays valid while the pool runs.
        float* p = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(_data));
        *job = new Job { P = p, X = x, Y = y, Rows = Rows, Cols = Cols, Panels = Panels, N = n };
        return new MatMul.PoolWork { Fn = &Chunk, Ctx = job, Chunks = (Panels + PanelsPerChunk - 1) / PanelsPerChunk };
    }

    static void Chunk(void* ctx, int chunk)
    {
        ref readonly Job j = ref *(Job*)ctx;
        int p0 = chunk * PanelsPerChunk, p1 = Math.Min(p0 + PanelsPerChunk, j.Panels);
        long panelFloats = (long)Lanes * j.Cols;
        float* tmp = stackalloc float[2 * TokensPerTile * Lanes];
        for (int p = p0; p < p1; p += 2)
        {
            bool two = p + 1 < p1;
            var k = new Tile { W = j.P + p * panelFloats, PanelFloats = panelFloats, Cols = j.Cols, Tmp = tmp };
            // A token tile reuses the panels' vectors while they are in L1.
            for (int t = 0; t < j.N;)
            {
                k.X = j.X + (long)t * j.Cols;
                int left = j.N - t, m = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
                if (two)
                    switch (m)
                    {
                        case 8: k.Run<T8, P2>(); break;
                        case 4: k.Run<T4, P2>(); break;
                        case 2: k.Run<T2, P2>(); break;
                        default: k.Run<T1, P2>(); break;
                    }
                else
                    switch (m)
                    {
                        case 8: k.Run<T8, P1>(); break;
                        case 4: k.Run<T4, P1>(); break;
                        case 2: k.Run<T2, P1>(); break;
                        default: k.Run<T1, P1>(); break;
                    }
                // Results: tmp[(panel * 8 + token) * 16 + lane].
                for (int q = 0; q < (two ? 2 : 1); q++)
                {
                    int r0 = (p + q) * Lanes, valid = Math.Min(Lanes, j.Rows - r0);
                    for (int b = 0; b < m; b++)
                        new ReadOnlySpan<float>(tmp + (q * TokensPerTile + b) * Lanes, valid).CopyTo(new Span<float>(j.Y + (long)(t + b) * j.Rows + r0, valid));
                }
                t += m;
            }
        }
    }

    interface ICount { static abstract int N { get; } }
    struct T1 : ICount { public static int N => 1; }
    struct T2 : ICount { public static int N => 2; }
    struct T4 : ICount { public static int N => 4; }
    struct T8 : ICount { public static int N => 8; }
    struct P1 : ICount { public static int N => 1; }
    struct P2 : ICount { public static int N => 2; }

    /// <summary>One or two panels times 1-8 tokens; a specialised instance per count keeps only the live accumulators.</summary>
    struct Tile
    {
        public float* W, X, Tmp;
        public long PanelFloats;
        public int Cols;

        public readonly void Run<TT, TP>() where TT : struct, ICount where TP : struct, ICount
        {
            int cols = Cols;
            float* w0 = W, w1 = W + (TP.N > 1 ? PanelFloats : 0);
            float* x0 = X, x1 = X + (TT.N > 1 ? cols : 0), x2 = X + (TT.N > 2 ? 2 * cols : 0), x3 = X + (TT.N > 2 ? 3 * cols : 0);
            float* x4 = X + (TT.N > 4 ? 4 * cols : 0), x5 = X + (TT.N > 4 ? 5 * cols : 0), x6 = X + (TT.N > 4 ? 6 * cols : 0), x7 = X + (TT.N > 4 ? 7 * cols : 0);
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
            Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default, b6 = default, b7 = default;
            for (int c = 0; c < cols; c++)
            {
                var u = Vector512.Load(w0 + c * Lanes);
                var v = TP.N > 1 ? Vector512.Load(w1 + c * Lanes) : default;
                var s = Vector512.Create(x0[c]);
                a0 = Vector512.FusedMultiplyAdd(s, u, a0);
                if (TP.N > 1) b0 = Vector512.FusedMultiplyAdd(s, v, b0);
                if (TT.N > 1)
                {
                    s = Vector512.Create(x1[c]);
                    a1 = Vector512.FusedMultiplyAdd(s, u, a1);
                    if (TP.N > 1) b1 = Vector512.FusedMultiplyAdd(s, v, b1);
                }
                if (TT.N > 2)
                {
                    s = Vector512.Create(x2[c]);
                    a2 = Vector512.FusedMultiplyAdd(s, u, a2);
                    if (TP.N > 1) b2 = Vector512.FusedMultiplyAdd(s, v, b2);
                    s = Vector512.Create(x3[c]);
                    a3 = Vector512.FusedMultiplyAdd(s, u, a3);
                    if (TP.N > 1) b3 = Vector512.FusedMultiplyAdd(s, v, b3);
                }
                if (TT.N > 4)
                {
                    s = Vector512.Create(x4[c]);
                    a4 = Vector512.FusedMultiplyAdd(s, u, a4);
                    if (TP.N > 1) b4 = Vector512.FusedMultiplyAdd(s, v, b4);
                    s = Vector512.Create(x5[c]);
                    a5 = Vector512.FusedMultiplyAdd(s, u, a5);
                    if (TP.N > 1) b5 = Vector512.FusedMultiplyAdd(s, v, b5);
                    s = Vector512.Create(x6[c]);
                    a6 = Vector512.FusedMultiplyAdd(s, u, a6);
                    if (TP.N > 1) b6 = Vector512.FusedMultiplyAdd(s, v, b6);
                    s = Vector512.Create(x7[c]);
                    a7 = Vector512.FusedMultiplyAdd(s, u, a7);
                    if (TP.N > 1) b7 = Vector512.FusedMultiplyAdd(s, v, b7);
                }
            }
            float* o = Tmp, ob = Tmp + TokensPerTile * Lanes;
            a0.Store(o); if (TP.N > 1) b0.Store(ob);
            if (TT.N > 1) { a1.Store(o + Lanes); if (TP.N > 1) b1.Store(ob + Lanes); }
            if (TT.N > 2)
            {
                a2.Store(o + 2 * Lanes); a3.Store(o + 3 * Lanes);
                if (TP.N > 1) { b2.Store(ob + 2 * Lanes); b3.Store(ob + 3 * Lanes); }
            }
            if (TT.N > 4)
            {
                a4.Store(o + 4 * Lanes); a5.Store(o + 5 * Lanes); a6.Store(o + 6 * Lanes); a7.Store(o + 7 * Lanes);
                if (TP.N > 1) { b4.Store(ob + 4 * Lanes); b5.Store(ob + 5 * Lanes); b6.Store(ob + 6 * Lanes); b7.Store(ob + 7 * Lanes); }
            }
        }
    }
}
