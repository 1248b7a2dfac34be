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
/// dot product (quantized formats first round x to int8 as llama.cpp does, see <see cref="QuantizesActivations(GgmlType)"/>).
/// A few tokens (2 to <see cref="SmallBatch.MaxTokens"/>, speculative token trees) with F32, F16 or BF16 weights stream
/// the rows once as decode does (<see cref="SmallBatch"/>).
/// Prefill (<see cref="MatMulRows"/>) is compute-bound: Q4_K, Q6_K and Q8_0 round every token to int8 too and run the
/// integer GEMM of <see cref="Int8Gemm"/>; other formats dequantize blocks of rows x 512 columns once into a
/// per-thread buffer and multiply them with every token in 4-row x 6-token register tiles (see <see cref="MatMulChunk"/>).
/// Rows are split across threads in chunks handed out by <see cref="KernelThreadPool"/>. Without AVX-512 a portable
/// path (reference dequantization + <see cref="Vector{T}"/> dots) is used.
/// </remarks>
public static unsafe class MatMul
{
    /// <summary>Whether the AVX-512 kernels run on this machine.</summary>
    internal static bool Avx512 => Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Avx512BW.IsSupported;

    /// <summary>The kernel tiers: AVX-512 (every format), AVX2 (int8 decode of Q8_0 / Q4_0; the rest portable), portable.</summary>
    internal enum IsaPath { Portable, Avx2, Avx512 }

    /// <summary>The best tier this machine runs.</summary>
    internal static IsaPath Isa => Avx512 ? IsaPath.Avx512 : Q8Act.Supported ? IsaPath.Avx2 : IsaPath.Portable;

    /// <summary>Which instruction-set paths the kernels take on this machine, in words (printed by <c>pare bench</c>).</summary>
    public static string DescribeIsa()
    {
        if (Isa == IsaPath.Portable) return $"portable (Vector<float>, {Vector<float>.Count} lanes; no AVX2)";
        if (Isa == IsaPath.Avx2)
            return "AVX2: Q8_0/Q4_0 decode int8 dots (" + (AvxVnni.IsSupported ? "AVX-VNNI" : "vpmaddubsw") +
                $"); other formats and prefill portable (Vector<float>, {Vector<float>.Count} lanes; no AVX-512)";
        var parts = new List<string> { "AVX-512 (F32, F16, BF16 decode and GEMM)" };
        parts.Add("F16 subnormal halves: " + (F16Kernel.DenormalsFree ? "fast path (float denormals free on AMD)" : "exact path per marked block"));
        parts.Add("Q8_0/Q4_0 decode int8 dots: " + (AvxVnni.IsSupported ? "AVX-VNNI" : "AVX2 vpmaddubsw (no AVX-VNNI)"));
        parts.Add(AvxVnni.IsSupported ? "Q8_0 prefill: int8 GEMM (AVX-VNNI)" : "Q8_0 prefill: int8 x int16 GEMM (AVX-512BW vpmaddwd; no AVX-VNNI)");
        parts.Add("K-quants int8: AVX-512BW" + (Gfni.IsSupported ? " + GFNI" : ""));
        return string.Join("; ", parts);
    }

    /// <summary>
    /// Whether the fast matrix-vector product of this weight type rounds x to 8-bit integers first (as llama.cpp does)
    /// and runs integer dot products: K-quants (Q8_K activations), Q8_0 and Q4_0 (Q8_0 activations, with AVX-VNNI).
    /// For matrix-matrix products see <see cref="QuantizesActivations(GgmlType, int)"/>.
    /// </summary>
    public static bool QuantizesActivations(GgmlType type) => QuantizesActivations(type, Isa);

    internal static bool QuantizesActivations(GgmlType type, IsaPath path) =>
        (path == IsaPath.Avx512 && type is GgmlType.Q4_K or GgmlType.Q6_K) ||
        (path >= IsaPath.Avx2 && Q8Act.Supported && type is GgmlType.Q8_0 or GgmlType.Q4_0);

    /// <summary>
    /// Whether the fast product of this weight type with <paramref name="n"/> tokens (<see cref="MatMulRows"/>) rounds x
    /// to 8-bit integers first: decode (n = 1) as <see cref="QuantizesActivations(GgmlType)"/>; prefill for Q4_K, Q6_K
    /// (Q8_K per token) and Q8_0 (Q8_0 per token) from <see cref="Int8Gemm.MinTokens"/> tokens on (integer GEMM).
    /// </summary>
    public static bool QuantizesActivations(GgmlType type, int n) =>
        n == 1 ? QuantizesActivations(type) : n >= Int8Gemm.MinTokens && Int8Gemm.Supports(type);

    const int MatVecRowsPerChunk = 16;

    /// <summary>y[r] = sum_c W[r, c] * x[c]. x: (Cols), y: (Rows). Rows are split across <paramref name="threads"/>.</summary>
    public static void MatVec(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int threads) =>
        MatVec(w, x, y, threads, portable: false);

    /// <summary>Y[t, r] = sum_c W[r, c] * X[t, c] for t &lt; n. X: (n, Cols) row-major, Y: (n, Rows) row-major.</summary>
    public static void MatMulRows(WeightMatrix w, ReadOnlySpan<float> x, int n, Span<float> y, int threads) =>
        MatMulRows(w, x, n, y, threads, portable: false);

    /// <summary>Products smaller than this many multiply-adds run on the calling thread: waking a worker costs more.</summary>
    const long MinParallelWork = 1 << 17;

    /// <summary>
    /// A decode product (one token) gives each thread at least this many multiply-adds (about 0.5 MB of Q8_0 weights,
    /// 2 MB of F32): below that the product is in cache, where a second thread (often a hyper-thread of the same core)
    /// adds little, while meeting it costs a cross-core handshake and the tail wait for its last chunk. With it a small
    /// model (pare-ref: its largest layer product has 180k) decodes on the calling thread except for the output head.
    /// </summary>
    const long MinDecodeWorkPerThread = 1 << 19;

    /// <summary>
    /// Float weights (F32/F16/BF16) split from this many bytes per thread: their products take no activation
    /// quantization, and pare-ref's F32 layers decode 2x faster on 2 threads split this way (1,076 vs 569 tok/s with
    /// the multiply-add rule alone, quiet machine, `pare bench --threads 2`).
    /// </summary>
    const long MinDecodeFloatBytesPerThread = 1 << 17;

    /// <summary>Threads for a decode product of <paramref name="work"/> multiply-adds over <paramref name="bytes"/> of
    /// <paramref name="type"/> weights (see <see cref="MinDecodeWorkPerThread"/>, <see cref="MinDecodeFloatBytesPerThread"/>).</summary>
    internal static int DecodeThreads(GgmlType type, long work, long bytes, int threads)
    {
        bool isFloat = type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16;
        long byWork = work / MinDecodeWorkPerThread, byBytes = isFloat ? bytes / MinDecodeFloatBytesPerThread : 0;
        return (int)Math.Clamp(Math.Max(byWork, byBytes), 1, Math.Max(1, threads));
    }

    internal static void MatVec(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int threads, bool portable) =>
        MatVec(w, x, y, threads, portable ? IsaPath.Portable : Isa);

    /// <summary>The product on a given tier (tests force each tier; one above the machine's best runs the best).</summary>
    internal static void MatVec(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int threads, IsaPath path)
    {
        Check(w, x, 1, y);
        threads = DecodeThreads(w.Type, (long)w.Rows * w.Cols, (long)w.Rows * w.RowBytes, threads);
        if (path > Isa) path = Isa;
        if (w.Sparse is { } sparse) { Sparse.SparseMatMul.MatMulRows(sparse, x, 1, y, threads, portable: path == IsaPath.Portable); return; }
        if (w.RowGroup is { } grouped) { Sparse.RowGroupSparseMatMul.MatMulRows(grouped, x, 1, y, threads, portable: path == IsaPath.Portable); return; }
        bool tier = path == IsaPath.Avx512 || (path == IsaPath.Avx2 && QuantizesActivations(w.Type, IsaPath.Avx2));
        if (!tier) { Portable(w, x, 1, y, threads); return; }
        if (!IsDense(w.Type)) throw new NotSupportedException($"matrix products with {w.Type} weights");
        int prepFloats = PrepFloats(w);
        float* prep = prepFloats > 0 ? ThreadBuffers.Prep(prepFloats) : null;
        fixed (float* px = x, py = y)
        {
            Job job;
            var s = Plan(w, px, py, prep, threads, &job);
            KernelThreadPool.Shared.Run(s.Fn, s.Ctx, s.Chunks, threads);
        }
    }

    static bool IsDense(GgmlType t) =>
        t is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q4_K or GgmlType.Q6_K;

    /// <summary>Floats of per-call activation data the decode kernel of this matrix needs.</summary>
    static int PrepFloats(WeightMatrix w) => w.Type switch
    {
        GgmlType.F32 => F32Kernel.PrepFloats(w.Cols),
        GgmlType.F16 => F16Kernel.PrepFloats(w.Cols),
        GgmlType.BF16 => BF16Kernel.PrepFloats(w.Cols),
        GgmlType.Q8_0 => Q8_0Kernel.PrepFloats(w.Cols),
        GgmlType.Q4_0 => Q4_0Kernel.PrepFloats(w.Cols),
        GgmlType.Q4_K => Q4KKernel.PrepFloats(w.Cols),
        GgmlType.Q6_K => Q6KKernel.PrepFloats(w.Cols),
        _ => 0,
    };

    /// <summary>
    /// Prepares x for one dense decode product (into <paramref name="prep"/>) and fills <paramref name="job"/>; returns
    /// the pool work that computes it. <paramref name="job"/> must live until the work has run.
    /// </summary>
    static PoolWork Plan(WeightMatrix w, float* x, float* y, float* prep, int threads, Job* job) => w.Type switch
    {
        GgmlType.F32 => PlanMatVec<F32Kernel>(w, x, y, prep, threads, job),
        GgmlType.F16 when !w.Mutable => PlanMatVecF16(w, x, y, prep, threads, job),
        GgmlType.F16 => PlanMatVec<F16Kernel>(w, x, y, prep, threads, job),
        GgmlType.BF16 => PlanMatVec<BF16Kernel>(w, x, y, prep, threads, job),
        GgmlType.Q8_0 => PlanMatVec<Q8_0Kernel>(w, x, y, prep, threads, job),
        GgmlType.Q4_0 => PlanMatVec<Q4_0Kernel>(w, x, y, prep, threads, job),
        GgmlType.Q4_K => PlanMatVec<Q4KKernel>(w, x, y, prep, threads, job),
        GgmlType.Q6_K => PlanMatVec<Q6KKernel>(w, x, y, prep, threads, job),
        _ => throw new NotSupportedException($"matrix products with {w.Type} weights"),
    };

    /// <summary>Work for <see cref="KernelThreadPool.Run"/>: fn(ctx, i) for i &lt; chunks.</summary>
    internal struct PoolWork
    {
        public delegate*<void*, int, void> Fn;
        public void* Ctx;
        public int Chunks;
    }

    /// <summary>Most products one fused dispatch takes (q, k, v).</summary>
    public const int MaxFused = 3;

    /// <summary>Up to <see cref="MaxFused"/> products' chunks numbered one after another.</summary>
    struct FusedWork
    {
        public PoolWork W0, W1, W2;
        public int Count;
    }

    static void FusedChunk(void* ctx, int chunk)
    {
        var f = (FusedWork*)ctx;
        PoolWork* w = &f->W0;
        for (int i = 0; i < f->Count; i++, w++)
        {
            if (chunk < w->Chunks) { w->Fn(w->Ctx, chunk); return; }
            chunk -= w->Chunks;
        }
    }

    /// <summary>
    /// Products that share their input (q/k/v, gate/up): Y_i = X W_i^T, each (n, Rows_i) block stored after the previous
    /// one in <paramref name="y"/>. Decode (n = 1) runs all of them in one pool dispatch, so the threads meet once instead
    /// of once per matrix, and matrices too small to split alone are split together. Results equal separate
    /// <see cref="MatMulRows(WeightMatrix, ReadOnlySpan{float}, int, Span{float}, int)"/> calls (every row's sum is
    /// computed alike however the rows are chunked).
    /// </summary>
    public static void MatMulRowsFused(ReadOnlySpan<WeightMatrix> ws, ReadOnlySpan<float> x, int n, Span<float> y, int threads)
    {
        if (ws.Length is 0 or > MaxFused) throw new ArgumentException($"1 to {MaxFused} matrices", nameof(ws));
        long work = 0, rows = 0, bytes = 0;
        bool fuse = n == 1 && threads > 1 && Avx512;
        foreach (var w in ws)
        {
            ArgumentNullException.ThrowIfNull(w);
            if (w.Cols != ws[0].Cols) throw new ArgumentException("fused products need matrices with the same columns", nameof(ws));
            work += (long)w.Rows * w.Cols;
            rows += w.Rows;
            bytes += (long)w.Rows * w.RowBytes;
            fuse &= w.Sparse == null && w.RowGroup == null && IsDense(w.Type);
        }
        if (y.Length < n * rows) throw new ArgumentException($"y has {y.Length} values, needs {n} x {rows}", nameof(y));
        threads = n == 1 ? DecodeThreads(ws[0].Type, work, bytes, threads) : threads;
        if (!fuse || threads == 1)
        {
            int off = 0;
            foreach (var w in ws)
            {
                MatMulRows(w, x, n, y.Slice(off, n * w.Rows), threads);
                off += n * w.Rows;
            }
            return;
        }
        if (x.Length < ws[0].Cols) throw new ArgumentException($"x has {x.Length} values, needs {ws[0].Cols}", nameof(x));
        int prepTotal = 0;
        foreach (var w in ws) prepTotal += w.Panels != null ? 0 : PrepFloats(w);
        float* prep = prepTotal > 0 ? ThreadBuffers.Prep(prepTotal) : null;
        fixed (float* px = x, py = y)
        {
            Job* jobs = stackalloc Job[MaxFused];
            F32Panels.Job* panelJobs = stackalloc F32Panels.Job[MaxFused];
            FusedWork f = default;
            PoolWork* pw = &f.W0;
            float* yi = py, pi = prep;
            int chunks = 0;
            for (int i = 0; i < ws.Length; i++)
            {
                var w = ws[i];
                pw[i] = w.Panels is { } panels ? panels.Plan(px, 1, yi, panelJobs + i) : Plan(w, px, yi, pi, threads, jobs + i);
                if (w.Panels == null) pi += PrepFloats(w);
                yi += w.Rows;
                chunks += pw[i].Chunks;
            }
            f.Count = ws.Length;
            KernelThreadPool.Shared.Run(&FusedChunk, &f, chunks, threads);
        }
    }

    /// <summary>
    /// F16 decode with the matrix's subnormal map, found in one pass on first use and cached on the matrix (an empty
    /// array when there is none: then the kernel tests nothing). A mutable matrix takes <see cref="F16Kernel.Dot4"/>,
    /// which maps its four rows on every call.
    /// </summary>
    static PoolWork PlanMatVecF16(WeightMatrix w, float* x, float* y, float* prep, int threads, Job* job)
    {
        // Where float denormals cost nothing (F16Kernel.DenormalsFree), subnormal halves take the fast path: no map.
        var map = F16Kernel.DenormalsFree ? [] : (ulong[])LazyInitializer.EnsureInitialized(ref w.KernelCache,
            () => F16Kernel.SubnormalMap((byte*)w.Data, w.Rows, w.Cols, w.RowBytes) ?? []);
        F16Kernel.Prepare(x, w.Cols, prep);
        int chunkRows = StreamChunkRows(w.Rows, threads);
        *job = new Job
        {
            W = (byte*)w.Data, RowBytes = w.RowBytes, X = x, Prep = prep, Y = y, Rows = w.Rows, Cols = w.Cols, N = 1,
            ChunkRows = chunkRows, MapWords = F16Kernel.MapWords(w.Cols),
            // The map is on the pinned heap: its address stays valid while the pool runs.
            Map = map.Length == 0 ? null : (ulong*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(map)),
        };
        return new PoolWork { Fn = &MatVecChunkF16, Ctx = job, Chunks = (w.Rows + chunkRows - 1) / chunkRows };
    }

    /// <summary><see cref="MatVecChunk{TK}"/> for F16 with the rows' subnormal maps.</summary>
    static void MatVecChunkF16(void* ctx, int chunk)
    {
        ref readonly Job j = ref *(Job*)ctx;
        int r0 = chunk * j.ChunkRows, nr = Math.Min(j.ChunkRows, j.Rows - r0);
        int q = (nr + 3) / 4;
        float* res = stackalloc float[4];
        for (int g = 0; g < q; g++)
        {
            int k0 = r0 + g;
            int k1 = q + g < nr ? k0 + q : k0, k2 = 2 * q + g < nr ? k0 + 2 * q : k0, k3 = 3 * q + g < nr ? k0 + 3 * q : k0;
            ulong* m = j.Map;
            if (m == null)
                F16Kernel.Dot4Mapped(j.W + k0 * j.RowBytes, j.W + k1 * j.RowBytes, j.W + k2 * j.RowBytes, j.W + k3 * j.RowBytes,
                    null, null, null, null, j.X, j.Prep, j.Cols, res);
            else
                F16Kernel.Dot4Mapped(j.W + k0 * j.RowBytes, j.W + k1 * j.RowBytes, j.W + k2 * j.RowBytes, j.W + k3 * j.RowBytes,
                    m + (long)k0 * j.MapWords, m + (long)k1 * j.MapWords, m + (long)k2 * j.MapWords, m + (long)k3 * j.MapWords,
                    j.X, j.Prep, j.Cols, res);
            float* yr = j.Y + r0 + g;
            yr[0] = res[0];
            if (q + g < nr) yr[q] = res[1];
            if (2 * q + g < nr) yr[2 * q] = res[2];
            if (3 * q + g < nr) yr[3 * q] = res[3];
        }
    }

    internal static void MatMulRows(WeightMatrix w, ReadOnlySpan<float> x, int n, Span<float> y, int threads, bool portable)
    {
        Check(w, x, n, y);
        if (n == 0) return;
        long work = (long)w.Rows * w.Cols * n;
        threads = n == 1 ? DecodeThreads(w.Type, work, (long)w.Rows * w.RowBytes, threads) : work < MinParallelWork ? 1 : Math.Max(1, threads);
        if (w.Sparse is { } sparse) { Sparse.SparseMatMul.MatMulRows(sparse, x, n, y, threads, portable); return; }
        if (w.RowGroup is { } grouped) { Sparse.RowGroupSparseMatMul.MatMulRows(grouped, x, n, y, threads, portable); return; }
        // Without AVX-512, one token still takes the best tier's decode kernel (AVX2 int8 for Q8_0 / Q4_0).
        if (n == 1 && !portable && !Avx512) { MatVec(w, x, y, threads, Isa); return; }
        if (portable || !Avx512) { Portable(w, x, n, y, threads); return; }
        // Narrow F32 matrices (small models) multiply from their panel copy: no reductions (F32Panels).
        if (w.Panels is { } panels)
        {
            fixed (float* px = x, py = y) panels.MatMulRows(px, n, py, threads);
            return;
        }
        // One token is decode: the streaming kernel reads each weight once either way and needs no buffer.
        if (n == 1) { MatVec(w, x, y, threads, portable: false); return; }
        if (QuantizesActivations(w.Type, n))
        {
            fixed (float* px = x, py = y) Int8Gemm.MatMulRows(w, px, n, py, threads);
            return;
        }
        // A few tokens (a speculative token tree): stream the rows once, as decode does. Narrow matrices (small models)
        // take every token count this way, 64 tokens at a time: there the blocked GEMM's packing does not pay.
        if (SmallBatch.Supports(w.Type) && (n <= SmallBatch.MaxTokens || w.Cols <= SmallBatch.MaxChunkedCols))
        {
            fixed (float* px = x, py = y)
                for (int t0 = 0; t0 < n; t0 += SmallBatch.MaxTokens)
                {
                    int m = Math.Min(SmallBatch.MaxTokens, n - t0);
                    SmallBatch.MatMulRows(w, px + (long)t0 * w.Cols, m, py + (long)t0 * w.Rows, threads);
                }
            return;
        }
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
    internal struct Job
    {
        public byte* W;
        public long RowBytes;
        public float* X;
        public float* Prep;
        public float* Y;
        public int Rows, Cols, N;
        public int ChunkRows; // decode: rows per chunk (StreamChunkRows)
        public ulong* Map;    // F16 decode: the subnormal map (null: none), MapWords words per row
        public int MapWords;
        public GgmlType Type;
    }

    static PoolWork PlanMatVec<TK>(WeightMatrix w, float* x, float* y, float* prep, int threads, Job* job) where TK : IRowKernel
    {
        if (TK.PrepFloats(w.Cols) > 0) TK.Prepare(x, w.Cols, prep);
        int chunkRows = StreamChunkRows(w.Rows, threads);
        *job = new Job { W = (byte*)w.Data, RowBytes = w.RowBytes, X = x, Prep = prep, Y = y, Rows = w.Rows, Cols = w.Cols, N = 1, ChunkRows = chunkRows };
        return new PoolWork { Fn = &MatVecChunk<TK>, Ctx = job, Chunks = (w.Rows + chunkRows - 1) / chunkRows };
    }

    /// <summary>
    /// Rows per decode chunk: long enough that each of a chunk's four row streams is long (the hardware prefetchers
    /// follow long contiguous streams; four adjacent short rows per step were read at half the bandwidth), short enough
    /// that every thread gets a few chunks to balance the load. 64 to 1024 rows, a multiple of 4.
    /// </summary>
    internal static int StreamChunkRows(int rows, int threads)
    {
        int perThread = (rows + threads - 1) / threads;
        int target = threads == 1 ? perThread : perThread / 4;
        return Math.Clamp((target + 3) & ~3, 64, 1024);
    }

    /// <summary>
    /// One chunk of a matrix-vector product: the chunk's rows are split into four quarters and each Dot4 takes one row
    /// from each quarter, so the thread reads four long contiguous streams. Each row's sum is computed exactly as
    /// before (same kernel, same order), so outputs do not depend on the chunking. Software prefetch of the next
    /// group's rows from this driver (a burst of line prefetches per group, 1 to 4 groups ahead) measured slower on
    /// every format (DRAM: 0.5-0.8x of no prefetch), so the hardware prefetchers are left to follow the streams.
    /// </summary>
    static void MatVecChunk<TK>(void* ctx, int chunk) where TK : IRowKernel
    {
        ref readonly Job j = ref *(Job*)ctx;
        int r0 = chunk * j.ChunkRows, nr = Math.Min(j.ChunkRows, j.Rows - r0);
        int q = (nr + 3) / 4; // rows per quarter; the last quarter may be shorter (or empty)
        float* res = stackalloc float[4];
        byte* w = j.W + r0 * j.RowBytes;
        long quarter = q * j.RowBytes;
        for (int g = 0; g < q; g++)
        {
            // A quarter that has run out repeats the first quarter's row (already in cache) and its result is dropped.
            byte* w0 = w + g * j.RowBytes;
            byte* w1 = q + g < nr ? w0 + quarter : w0;
            byte* w2 = 2 * q + g < nr ? w0 + 2 * quarter : w0;
            byte* w3 = 3 * q + g < nr ? w0 + 3 * quarter : w0;
            TK.Dot4(w0, w1, w2, w3, j.X, j.Prep, j.Cols, res);
            float* yr = j.Y + r0 + g;
            yr[0] = res[0];
            if (q + g < nr) yr[q] = res[1];
            if (2 * q + g < nr) yr[2 * q] = res[2];
            if (3 * q + g < nr) yr[3 * q] = res[3];
        }
    }

    // Prefill: per chunk of GemmRows rows, the columns are taken KC at a time. The chunk's rows are dequantized
    // once per column block into a per-thread buffer (GemmRows x KC floats, L2-resident) and multiplied with every
    // token's slice of x (n x KC floats, shared by all rows of the chunk) in 4-row x 6-token register tiles. The
    // tiles keep 16-lane partial sums per (row, token) in a per-thread buffer; one horizontal sum per output at the end.
    const int GemmRows = 24, KC = 512, TileRows = 4, TileTokens = 6;

    static void MatMulRows<TK>(WeightMatrix w, ReadOnlySpan<float> x, int n, Span<float> y, int threads) where TK : IRowKernel
    {
        fixed (float* px = x, py = y)
        {
            var job = new Job { W = (byte*)w.Data, RowBytes = w.RowBytes, X = px, Y = py, Rows = w.Rows, Cols = w.Cols, N = n, Type = w.Type };
            int chunks = (w.Rows + GemmRows - 1) / GemmRows;
            KernelThreadPool.Shared.Run(&MatMulChunk<TK>, &job, chunks, threads);
        }
    }

    static void MatMulChunk<TK>(void* ctx, int chunk) where TK : IRowKernel
    {
        ref readonly Job j = ref *(Job*)ctx;
        int r0 = chunk * GemmRows, nr = Math.Min(GemmRows, j.Rows - r0);
        int cols = j.Cols, n = j.N;
        bool f32 = typeof(TK) == typeof(F32Kernel);
        float* buf = f32 ? null : ThreadBuffers.Rows(GemmRows * KC);
        float* part = ThreadBuffers.Partial(nr * n * 16);
        new Span<float>(part, nr * n * 16).Clear();
        float** wr = stackalloc float*[TileRows];
        float** xr = stackalloc float*[TileTokens];
        float** pr = stackalloc float*[TileRows * TileTokens];
        for (int k0 = 0; k0 < cols; k0 += KC)
        {
            int kc = Math.Min(KC, cols - k0);
            long offset = f32 ? (long)k0 * 4 : GgmlTypeInfo.RowBytes(j.Type, k0);
            if (!f32)
                for (int a = 0; a < nr; a++) TK.DequantRow(j.W + (r0 + a) * j.RowBytes + offset, buf + a * KC, kc);
            for (int t = 0; t < n; t += TileTokens)
            {
                int nt = Math.Min(TileTokens, n - t);
                for (int b = 0; b < TileTokens; b++) xr[b] = j.X + (long)(t + Math.Min(b, nt - 1)) * cols + k0;
                for (int r = 0; r < nr; r += TileRows)
                {
                    int na = Math.Min(TileRows, nr - r);
                    for (int a = 0; a < TileRows; a++)
                    {
                        int ra = r + Math.Min(a, na - 1);
                        wr[a] = f32 ? (float*)(j.W + (r0 + ra) * j.RowBytes + offset) : buf + ra * KC;
                    }
                    // Padding rows and tokens compute into a scratch slot (the buffer's spare tail) and are dropped.
                    float* spare = part + nr * n * 16;
                    for (int a = 0; a < TileRows; a++)
                        for (int b = 0; b < TileTokens; b++)
                            pr[a * TileTokens + b] = a < na && b < nt ? part + ((long)(r + a) * n + t + b) * 16 : spare;
                    // Two tokens or fewer (small speculative trees): a narrow tile, so padding does not triple the work.
                    if (nt <= 2) Tile4x2(wr, xr, kc, pr); else Tile4x6(wr, xr, kc, pr);
                }
            }
        }
        for (int a = 0; a < nr; a++)
            for (int t = 0; t < n; t++)
                j.Y[(long)t * j.Rows + r0 + a] = Vector512.Sum(Vector512.Load(part + ((long)a * n + t) * 16));
    }

    /// <summary>
    /// p[6a + b] += 16-lane partial sums of dot(w[a], x[b]) over kc columns, for a 4-row x 6-token tile: 10 loads
    /// feed 24 FMAs per 16 columns. A tail of fewer than 16 columns is added to lane 0.
    /// </summary>
    static void Tile4x6(float** w, float** x, int kc, float** p)
    {
        float* w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
        float* x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3], x4 = x[4], x5 = x[5];
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default, c04 = default, c05 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default, c14 = default, c15 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default, c24 = default, c25 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default, c34 = default, c35 = default;
        int i = 0;
        for (; i + 16 <= kc; i += 16)
        {
            var a0 = Vector512.Load(w0 + i); var a1 = Vector512.Load(w1 + i);
            var a2 = Vector512.Load(w2 + i); var a3 = Vector512.Load(w3 + i);
            var b = Vector512.Load(x0 + i);
            c00 = Vector512.FusedMultiplyAdd(a0, b, c00); c10 = Vector512.FusedMultiplyAdd(a1, b, c10);
            c20 = Vector512.FusedMultiplyAdd(a2, b, c20); c30 = Vector512.FusedMultiplyAdd(a3, b, c30);
            b = Vector512.Load(x1 + i);
            c01 = Vector512.FusedMultiplyAdd(a0, b, c01); c11 = Vector512.FusedMultiplyAdd(a1, b, c11);
            c21 = Vector512.FusedMultiplyAdd(a2, b, c21); c31 = Vector512.FusedMultiplyAdd(a3, b, c31);
            b = Vector512.Load(x2 + i);
            c02 = Vector512.FusedMultiplyAdd(a0, b, c02); c12 = Vector512.FusedMultiplyAdd(a1, b, c12);
            c22 = Vector512.FusedMultiplyAdd(a2, b, c22); c32 = Vector512.FusedMultiplyAdd(a3, b, c32);
            b = Vector512.Load(x3 + i);
            c03 = Vector512.FusedMultiplyAdd(a0, b, c03); c13 = Vector512.FusedMultiplyAdd(a1, b, c13);
            c23 = Vector512.FusedMultiplyAdd(a2, b, c23); c33 = Vector512.FusedMultiplyAdd(a3, b, c33);
            b = Vector512.Load(x4 + i);
            c04 = Vector512.FusedMultiplyAdd(a0, b, c04); c14 = Vector512.FusedMultiplyAdd(a1, b, c14);
            c24 = Vector512.FusedMultiplyAdd(a2, b, c24); c34 = Vector512.FusedMultiplyAdd(a3, b, c34);
            b = Vector512.Load(x5 + i);
            c05 = Vector512.FusedMultiplyAdd(a0, b, c05); c15 = Vector512.FusedMultiplyAdd(a1, b, c15);
            c25 = Vector512.FusedMultiplyAdd(a2, b, c25); c35 = Vector512.FusedMultiplyAdd(a3, b, c35);
        }
        Add(p[0], c00); Add(p[1], c01); Add(p[2], c02); Add(p[3], c03); Add(p[4], c04); Add(p[5], c05);
        Add(p[6], c10); Add(p[7], c11); Add(p[8], c12); Add(p[9], c13); Add(p[10], c14); Add(p[11], c15);
        Add(p[12], c20); Add(p[13], c21); Add(p[14], c22); Add(p[15], c23); Add(p[16], c24); Add(p[17], c25);
        Add(p[18], c30); Add(p[19], c31); Add(p[20], c32); Add(p[21], c33); Add(p[22], c34); Add(p[23], c35);
        for (; i < kc; i++)
            for (int a = 0; a < TileRows; a++)
                for (int b = 0; b < TileTokens; b++)
                    p[a * TileTokens + b][0] += w[a][i] * x[b][i];

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Add(float* q, Vector512<float> v) => (Vector512.Load(q) + v).Store(q);
    }

    /// <summary>The first two tokens of <see cref="Tile4x6"/>'s tile: p[6a + b] for b &lt; 2.</summary>
    static void Tile4x2(float** w, float** x, int kc, float** p)
    {
        float* w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
        float* x0 = x[0], x1 = x[1];
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector512<float> c20 = default, c21 = default, c30 = default, c31 = default;
        int i = 0;
        for (; i + 16 <= kc; i += 16)
        {
            var a0 = Vector512.Load(w0 + i); var a1 = Vector512.Load(w1 + i);
            var a2 = Vector512.Load(w2 + i); var a3 = Vector512.Load(w3 + i);
            var b = Vector512.Load(x0 + i);
            c00 = Vector512.FusedMultiplyAdd(a0, b, c00); c10 = Vector512.FusedMultiplyAdd(a1, b, c10);
            c20 = Vector512.FusedMultiplyAdd(a2, b, c20); c30 = Vector512.FusedMultiplyAdd(a3, b, c30);
            b = Vector512.Load(x1 + i);
            c01 = Vector512.FusedMultiplyAdd(a0, b, c01); c11 = Vector512.FusedMultiplyAdd(a1, b, c11);
            c21 = Vector512.FusedMultiplyAdd(a2, b, c21); c31 = Vector512.FusedMultiplyAdd(a3, b, c31);
        }
        Add(p[0], c00); Add(p[1], c01); Add(p[6], c10); Add(p[7], c11);
        Add(p[12], c20); Add(p[13], c21); Add(p[18], c30); Add(p[19], c31);
        for (; i < kc; i++)
            for (int a = 0; a < TileRows; a++)
                for (int b = 0; b < 2; b++)
                    p[a * TileTokens + b][0] += w[a][i] * x[b][i];

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Add(float* q, Vector512<float> v) => (Vector512.Load(q) + v).Store(q);
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
    [ThreadStatic] static float[]? t_scores;
    [ThreadStatic] static float[]? t_partial;
    [ThreadStatic] static float[]? t_decoded;

    /// <summary>Activation data prepared by the calling thread for one product.</summary>
    public static float* Prep(int floats) => Get(ref t_prep, floats);

    /// <summary>Dequantized rows of the current thread's chunk.</summary>
    public static float* Rows(int floats) => Get(ref t_rows, floats);

    /// <summary>Partial sums of a matrix-matrix chunk.</summary>
    public static float* Partial(int floats) => Get(ref t_partial, floats + 16);

    /// <summary>Rows of a compact sparse matrix decoded back to their dense storage for a chunk.</summary>
    public static float* Decoded(int floats) => Get(ref t_decoded, floats);

    /// <summary>One row of attention scores.</summary>
    public static float* Scores(int floats) => Get(ref t_scores, floats);

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

    /// <summary>
    /// What the fast matrix-vector kernel computes: x rounded as the kernel rounds it for this weight type
    /// (<see cref="MatMul.QuantizesActivations(GgmlType)"/>: Q8_K per 256 values for K-quants, Q8_0 per 32 for Q8_0 and Q4_0,
    /// as llama.cpp), then
    /// <see cref="MatVec"/>. Equal to the fast kernel up to float rounding of the sums.
    /// </summary>
    public static void MatVecAsKernel(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(w);
        if (!MatMul.QuantizesActivations(w.Type)) { MatVec(w, x, y); return; }
        var xr = new float[w.Cols];
        bool kQuant = w.Type is GgmlType.Q4_K or GgmlType.Q6_K;
        int size = kQuant ? Q8K.BlockSize : Q8Act.BlockSize;
        var q = new sbyte[size];
        for (int b = 0; b < w.Cols / size; b++)
        {
            var xb = x.Slice(b * size, size);
            float d = kQuant ? Q8K.QuantizeBlockReference(xb, q) : Q8Act.QuantizeBlockReference(xb, q);
            for (int i = 0; i < size; i++) xr[b * size + i] = q[i] * d;
        }
        MatVec(w, xr, y);
    }

    /// <summary>
    /// What the fast <see cref="MatMul.MatMulRows(WeightMatrix, ReadOnlySpan{float}, int, Span{float}, int)"/> computes:
    /// each token rounded as the kernel rounds it (<see cref="MatMul.QuantizesActivations(GgmlType, int)"/>), then
    /// <see cref="MatMulRows"/>.
    /// </summary>
    public static void MatMulRowsAsKernel(WeightMatrix w, ReadOnlySpan<float> x, int n, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(w);
        if (!MatMul.QuantizesActivations(w.Type, n)) { MatMulRows(w, x, n, y); return; }
        var yt = new float[w.Rows];
        for (int t = 0; t < n; t++)
        {
            MatVecAsKernel(w, x.Slice(t * w.Cols, w.Cols), yt);
            yt.CopyTo(y.Slice(t * w.Rows, w.Rows));
        }
    }

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
