using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pare.Kernels;

/// <summary>
/// A linear layer's F32 weights W [N outputs, K inputs] and bias packed once for <see cref="F32Gemm"/>: panels of
/// <see cref="Width"/> = 32 outputs, k-major inside (panel p: data[p·32·K + k·32 + j] = W[32p + j, k]); the last panel
/// and the bias are zero-padded to a multiple of 32.
/// </summary>
public sealed unsafe class F32GemmWeights
{
    public const int Width = 32;

    readonly float[] _data; // pinned: kernels hold raw pointers while the pool runs
    readonly float[] _bias; // pinned, Panels·32

    public int N { get; }
    public int K { get; }
    public int Panels { get; }

    internal float* Data => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_data));
    internal float* Bias => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_bias));

    /// <summary>Packs a dense F32 <see cref="WeightMatrix"/> [out, in] and its bias.</summary>
    public static F32GemmWeights Pack(WeightMatrix w, ReadOnlySpan<float> bias)
    {
        if (w.Type != Tensors.GgmlType.F32 || w.Sparse != null || w.RowBytes != w.Cols * 4) throw new ArgumentException($"'{w.Name}' is not a dense F32 matrix", nameof(w));
        return new F32GemmWeights(new ReadOnlySpan<float>((void*)w.Data, checked(w.Rows * w.Cols)), w.Rows, w.Cols, bias);
    }

    /// <summary>Packs row-major <paramref name="w"/> (N·K values) and <paramref name="bias"/> (N values, or empty for none).</summary>
    public F32GemmWeights(ReadOnlySpan<float> w, int n, int k, ReadOnlySpan<float> bias)
    {
        if (n < 1 || k < 1 || w.Length < (long)n * k) throw new ArgumentException($"weights of [{n} x {k}] need {(long)n * k} values, got {w.Length}");
        if (bias.Length != 0 && bias.Length != n) throw new ArgumentException($"bias has {bias.Length} values for {n} outputs");
        N = n; K = k; Panels = (n + Width - 1) / Width;
        _data = GC.AllocateArray<float>(Panels * Width * k, pinned: true);
        _bias = GC.AllocateArray<float>(Panels * Width, pinned: true);
        bias.CopyTo(_bias);
        for (int r = 0; r < n; r++)
        {
            var row = w.Slice(r * k, k);
            int p = r / Width, j = r % Width;
            var panel = _data.AsSpan(p * Width * k, Width * k);
            for (int c = 0; c < k; c++) panel[c * Width + j] = row[c];
        }
    }
}

/// <summary>
/// F32 matrix products of many tokens with packed weights (<see cref="F32GemmWeights"/>): Y = X Wᵀ + b, with GELU or
/// with a residual add and LayerNorm fused into the store. The encoder's linear layers (K = 384 / 1536, N = 384-1536,
/// 128-4096 tokens).
/// </summary>
/// <remarks>
/// A register-blocked AVX-512 micro-kernel: 12 tokens x 32 outputs in 24 accumulators over the whole K, each step two
/// weight vectors and twelve broadcasts. The tokens of a block are repacked k-major per 12 (one pointer for the
/// broadcasts); work is split over the kernel pool in chunks of (token block, group of panels), a panel outer so its
/// weights stay in cache across the block's tiles. The fused LayerNorm needs whole rows, so there a chunk is a token
/// block over all panels. <see cref="F32GemmReference"/> is the plain version tests compare against.
/// </remarks>
public static unsafe class F32Gemm
{
    const int MR = 12, NR = F32GemmWeights.Width;

    /// <summary>Whether the kernel runs here (AVX-512); callers fall back to other kernels otherwise.</summary>
    public static bool Supported => MatMul.Avx512;

    /// <summary>
    /// y[t, n] = Σ_k x[t, k] W[n, k] + b[n] for t &lt; <paramref name="m"/>, with GELU (erf form) applied when
    /// <paramref name="gelu"/>. x: (m, K), y: (m, N), row-major.
    /// </summary>
    public static void Multiply(F32GemmWeights w, ReadOnlySpan<float> x, int m, Span<float> y, int threads, bool gelu = false)
    {
        Check(w, x, m, y.Length);
        fixed (float* px = x, py = y)
        {
            var job = Plan(w, px, m, py, threads);
            job.Gelu = gelu;
            KernelThreadPool.Shared.Run(&Chunk, &job, job.Blocks * job.Groups, threads);
        }
    }

    /// <summary>
    /// residual[t] = LayerNorm(residual[t] + x[t] Wᵀ + b) · gamma + beta per row (population variance, ε inside the
    /// root), the add-and-norm after a BERT sublayer. <paramref name="scratch"/> takes the product, (m, N).
    /// </summary>
    public static void MultiplyAddNorm(F32GemmWeights w, ReadOnlySpan<float> x, int m, Span<float> residual, ReadOnlySpan<float> gamma,
        ReadOnlySpan<float> beta, float eps, Span<float> scratch, int threads)
    {
        Check(w, x, m, scratch.Length);
        if (residual.Length < (long)m * w.N || gamma.Length < w.N || beta.Length < w.N) throw new ArgumentException("residual, gamma or beta too short");
        fixed (float* px = x, py = scratch, pr = residual, pg = gamma, pb = beta)
        {
            var job = Plan(w, px, m, py, threads);
            int* done = stackalloc int[Math.Max(1, job.Blocks)];
            for (int i = 0; i < job.Blocks; i++) done[i] = 0;
            job.Residual = pr; job.Gamma = pg; job.Beta = pb; job.Eps = eps; job.Done = done;
            KernelThreadPool.Shared.Run(&Chunk, &job, job.Blocks * job.Groups, threads);
        }
    }

    static void Check(F32GemmWeights w, ReadOnlySpan<float> x, int m, int yLength)
    {
        if (!Supported) throw new PlatformNotSupportedException("F32Gemm needs AVX-512");
        if (m < 0 || x.Length < (long)m * w.K || yLength < (long)m * w.N) throw new ArgumentException($"buffers too short for {m} tokens");
    }

    struct Job
    {
        public float* W, Bias, X, Y, Residual, Gamma, Beta;
        public int* Done; // per token block: panel groups finished (the last one normalizes the rows)
        public float Eps;
        public bool Gelu;
        public int M, N, K, Panels, BlockTokens, Blocks, PanelsPerGroup, Groups;
    }

    /// <summary>Values of a token block's activations kept within the L2 cache (192 KB).</summary>
    const int BlockValues = 48 * 1024;

    /// <summary>Chunks per thread a product aims at (the pool hands them out dynamically: a slow thread takes fewer, and
    /// the last chunk is what the other thread may wait for: at 128 tokens, 8 per thread keep that under ~0.1 ms).</summary>
    const int ChunksPerThread = 8;

    static Job Plan(F32GemmWeights w, float* x, int m, float* y, int threads)
    {
        int k = w.K;
        // Token blocks: a multiple of MR tokens, at most BlockValues activations (unless one tile is larger).
        int blocks = Math.Max(1, (int)(((long)m * k + BlockValues - 1) / BlockValues));
        int tiles = Math.Max(1, (m + MR - 1) / MR);
        int blockTiles = Math.Max(1, (tiles + blocks - 1) / blocks);
        int blockTokens = blockTiles * MR;
        blocks = Math.Max(1, (m + blockTokens - 1) / blockTokens);
        // Panel groups: enough chunks for the threads. Where the activations are read in place (K = 384 / 1536) a
        // group costs nothing extra; otherwise each group repacks its token block, so fewer.
        int want = threads > 1 ? ChunksPerThread * threads : 1;
        int groups = Math.Clamp((want + blocks - 1) / blocks, 1, w.Panels);
        if (!Direct(k)) groups = Math.Min(groups, Math.Max(1, (threads + blocks - 1) / blocks));
        int perGroup = (w.Panels + groups - 1) / groups;
        groups = (w.Panels + perGroup - 1) / perGroup;
        return new Job
        {
            W = w.Data, Bias = w.Bias, X = x, Y = y, M = m, N = w.N, K = k, Panels = w.Panels,
            BlockTokens = blockTokens, Blocks = m == 0 ? 0 : blocks, PanelsPerGroup = perGroup, Groups = groups,
        };
    }

    /// <summary>K for which the micro-kernel reads the activations in place (row stride a compile-time constant).</summary>
    static bool Direct(int k) => k == 384 || k == 1536;

    [ThreadStatic] static float[]? t_pack;

    static float* PackBuffer(int values)
    {
        var a = t_pack;
        if (a == null || a.Length < values) t_pack = a = GC.AllocateUninitializedArray<float>(Math.Max(values, 64 * 1024), pinned: true);
        return (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(a));
    }

    static void Chunk(void* ctx, int chunk)
    {
        ref readonly Job j = ref *(Job*)ctx;
        int block = chunk / j.Groups, group = chunk % j.Groups;
        int t0 = block * j.BlockTokens, t1 = Math.Min(t0 + j.BlockTokens, j.M);
        int p0 = group * j.PanelsPerGroup, p1 = Math.Min(p0 + j.PanelsPerGroup, j.Panels);
        int k = j.K, n = t1 - t0, tiles = (n + MR - 1) / MR;
        bool direct = Direct(k);
        // Packed tiles: all of the block, or (read in place) only a last partial tile, zero-padded to MR rows. A last
        // tile of exactly 4 or 8 rows is read in place too: the R4 / R8 instances read exactly that many rows (any other
        // count would read rows past m, possibly past the buffer).
        int tail = n % MR;
        int firstPacked = !direct ? 0 : tail == 0 || tail == 4 || tail == 8 ? tiles : n / MR;
        float* a = null;
        if (firstPacked < tiles)
        {
            a = PackBuffer((tiles - firstPacked) * MR * k);
            Pack(j.X + (long)(t0 + firstPacked * MR) * k, n - firstPacked * MR, k, a);
        }
        float* acc = stackalloc float[MR * NR];
        for (int p = p0; p < p1; p++)
        {
            float* b = j.W + (long)p * NR * k, bias = j.Bias + p * NR;
            int cols = Math.Min(NR, j.N - p * NR);
            for (int t = 0; t < tiles; t++)
            {
                int rows = Math.Min(MR, n - t * MR);
                if (t < firstPacked)
                {
                    float* x = j.X + (long)(t0 + t * MR) * k;
                    if (k == 384)
                    {
                        if (rows > 8) Kernel<Rows384, R12>(x, b, k, acc);
                        else if (rows > 4) Kernel<Rows384, R8>(x, b, k, acc);
                        else Kernel<Rows384, R4>(x, b, k, acc);
                    }
                    else if (rows > 8) Kernel<Rows1536, R12>(x, b, k, acc);
                    else if (rows > 4) Kernel<Rows1536, R8>(x, b, k, acc);
                    else Kernel<Rows1536, R4>(x, b, k, acc);
                }
                else if (rows <= 4) Kernel<Packed, R4>(a + (long)(t - firstPacked) * MR * k, b, k, acc);
                else if (rows <= 8) Kernel<Packed, R8>(a + (long)(t - firstPacked) * MR * k, b, k, acc);
                else Kernel<Packed, R12>(a + (long)(t - firstPacked) * MR * k, b, k, acc);
                Epilogue(acc, j.Y + (long)(t0 + t * MR) * j.N + p * NR, j.N, rows, cols, bias, j.Gelu);
            }
        }
        // Add-and-norm: the chunk that completes a block's last panel group normalizes its rows (the interlocked
        // increment orders the other groups' stores before these loads).
        if (j.Residual != null && (j.Groups == 1 || Interlocked.Increment(ref j.Done[block]) == j.Groups))
            for (int t = t0; t < t1; t++)
                AddNorm(j.Residual + (long)t * j.N, j.Y + (long)t * j.N, j.Gamma, j.Beta, j.Eps, j.N);
    }

    /// <summary>Rows of x (n ≤ any, k values each) into tiles of MR rows, k-major: a[tile·MR·k + c·MR + r]; missing rows zero.</summary>
    static void Pack(float* x, int n, int k, float* a)
    {
        for (int t = 0; t * MR < n; t++)
        {
            float* dst = a + (long)t * MR * k;
            int rows = Math.Min(MR, n - t * MR);
            for (int r = 0; r < MR; r++)
            {
                float* d = dst + r;
                if (r >= rows) { for (int c = 0; c < k; c++) d[c * MR] = 0f; continue; }
                float* src = x + (long)(t * MR + r) * k;
                for (int c = 0; c < k; c++) d[c * MR] = src[c];
            }
        }
    }

    /// <summary>Where the micro-kernel finds token r's value at step k: a[r · Row + k · Step].</summary>
    interface ILayout { static abstract int Row { get; } static abstract int Step { get; } }
    /// <summary>A packed tile (k-major, MR per step).</summary>
    struct Packed : ILayout { public static int Row => 1; public static int Step => MR; }
    /// <summary>Activations in place, rows of 384 / 1536 values.</summary>
    struct Rows384 : ILayout { public static int Row => 384; public static int Step => 1; }
    struct Rows1536 : ILayout { public static int Row => 1536; public static int Step => 1; }

    /// <summary>Tokens a kernel instance computes (a last partial tile of up to 4 or 8 skips the other rows' FMAs).</summary>
    interface IRows { static abstract int N { get; } }
    struct R4 : IRows { public static int N => 4; }
    struct R8 : IRows { public static int N => 8; }
    struct R12 : IRows { public static int N => 12; }

    /// <summary>12 tokens times one panel of 32 outputs over all k, the 24 accumulators stored to acc[24·16]
    /// (row r: acc[32r .. 32r + 31]). No calls after the loop: on SysV every vector register is caller-saved, and a call
    /// in the epilogue made the JIT spill the accumulators inside the loop.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel<L, R>(float* a, float* b, int k, float* acc) where L : struct, ILayout where R : struct, IRows
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector512<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        Vector512<float> c60 = default, c61 = default, c70 = default, c71 = default, c80 = default, c81 = default;
        Vector512<float> c90 = default, c91 = default, ca0 = default, ca1 = default, cb0 = default, cb1 = default;
        for (int i = 0; i < k; i++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var s = Vector512.Create(a[0]); c00 = Vector512.FusedMultiplyAdd(s, b0, c00); c01 = Vector512.FusedMultiplyAdd(s, b1, c01);
            s = Vector512.Create(a[L.Row]); c10 = Vector512.FusedMultiplyAdd(s, b0, c10); c11 = Vector512.FusedMultiplyAdd(s, b1, c11);
            s = Vector512.Create(a[2 * L.Row]); c20 = Vector512.FusedMultiplyAdd(s, b0, c20); c21 = Vector512.FusedMultiplyAdd(s, b1, c21);
            s = Vector512.Create(a[3 * L.Row]); c30 = Vector512.FusedMultiplyAdd(s, b0, c30); c31 = Vector512.FusedMultiplyAdd(s, b1, c31);
            if (R.N <= 4) { a += L.Step; b += NR; continue; }
            s = Vector512.Create(a[4 * L.Row]); c40 = Vector512.FusedMultiplyAdd(s, b0, c40); c41 = Vector512.FusedMultiplyAdd(s, b1, c41);
            s = Vector512.Create(a[5 * L.Row]); c50 = Vector512.FusedMultiplyAdd(s, b0, c50); c51 = Vector512.FusedMultiplyAdd(s, b1, c51);
            s = Vector512.Create(a[6 * L.Row]); c60 = Vector512.FusedMultiplyAdd(s, b0, c60); c61 = Vector512.FusedMultiplyAdd(s, b1, c61);
            s = Vector512.Create(a[7 * L.Row]); c70 = Vector512.FusedMultiplyAdd(s, b0, c70); c71 = Vector512.FusedMultiplyAdd(s, b1, c71);
            if (R.N <= 8) { a += L.Step; b += NR; continue; }
            s = Vector512.Create(a[8 * L.Row]); c80 = Vector512.FusedMultiplyAdd(s, b0, c80); c81 = Vector512.FusedMultiplyAdd(s, b1, c81);
            s = Vector512.Create(a[9 * L.Row]); c90 = Vector512.FusedMultiplyAdd(s, b0, c90); c91 = Vector512.FusedMultiplyAdd(s, b1, c91);
            s = Vector512.Create(a[10 * L.Row]); ca0 = Vector512.FusedMultiplyAdd(s, b0, ca0); ca1 = Vector512.FusedMultiplyAdd(s, b1, ca1);
            s = Vector512.Create(a[11 * L.Row]); cb0 = Vector512.FusedMultiplyAdd(s, b0, cb0); cb1 = Vector512.FusedMultiplyAdd(s, b1, cb1);
            a += L.Step; b += NR;
        }
        c00.Store(acc); c01.Store(acc + 16); c10.Store(acc + 32); c11.Store(acc + 48);
        c20.Store(acc + 64); c21.Store(acc + 80); c30.Store(acc + 96); c31.Store(acc + 112);
        c40.Store(acc + 128); c41.Store(acc + 144); c50.Store(acc + 160); c51.Store(acc + 176);
        c60.Store(acc + 192); c61.Store(acc + 208); c70.Store(acc + 224); c71.Store(acc + 240);
        c80.Store(acc + 256); c81.Store(acc + 272); c90.Store(acc + 288); c91.Store(acc + 304);
        ca0.Store(acc + 320); ca1.Store(acc + 336); cb0.Store(acc + 352); cb1.Store(acc + 368);
    }

    /// <summary>Rows x cols of a tile's accumulators plus bias (and GELU) into C.</summary>
    static void Epilogue(float* acc, float* c, int ldc, int rows, int cols, float* bias, bool gelu)
    {
        var d0 = Vector512.Load(bias);
        var d1 = Vector512.Load(bias + 16);
        if (cols == NR)
        {
            if (gelu)
                for (int r = 0; r < rows; r++, c += ldc)
                {
                    Gelu(Vector512.Load(acc + r * NR) + d0).Store(c);
                    Gelu(Vector512.Load(acc + r * NR + 16) + d1).Store(c + 16);
                }
            else
                for (int r = 0; r < rows; r++, c += ldc)
                {
                    (Vector512.Load(acc + r * NR) + d0).Store(c);
                    (Vector512.Load(acc + r * NR + 16) + d1).Store(c + 16);
                }
            return;
        }
        for (int r = 0; r < rows; r++)
            Store(c + (long)r * ldc, Vector512.Load(acc + r * NR) + d0, Vector512.Load(acc + r * NR + 16) + d1, cols, gelu);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store(float* dst, Vector512<float> v0, Vector512<float> v1, int cols, bool gelu)
    {
        if (gelu) { v0 = Gelu(v0); v1 = Gelu(v1); }
        if (cols == NR) { v0.Store(dst); v1.Store(dst + 16); return; }
        float* tmp = stackalloc float[NR];
        v0.Store(tmp); v1.Store(tmp + 16);
        for (int i = 0; i < cols; i++) dst[i] = tmp[i];
    }

    /// <summary>
    /// GELU, x Φ(x) = ½ x (1 + erf(x/√2)), with erf as a rational function on [-4, 4] (odd degree-13 numerator,
    /// even degree-8 denominator: Eigen's <c>generic_fast_erf_float</c>; |erf| rounds to 1 beyond 4 in float). No
    /// exponential: a third of the cost of the Abramowitz-Stegun form with exp that <c>BertOps.Gelu</c> uses.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Gelu(Vector512<float> x)
    {
        var z = Vector512.Min(Vector512.Max(x * Vector512.Create(0.70710678118654752f), Vector512.Create(-4f)), Vector512.Create(4f));
        var z2 = z * z;
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(-2.72614225801306e-10f), z2, Vector512.Create(2.77068142495902e-08f));
        p = Vector512.FusedMultiplyAdd(p, z2, Vector512.Create(-2.10102402082508e-06f));
        p = Vector512.FusedMultiplyAdd(p, z2, Vector512.Create(-5.69250639462346e-05f));
        p = Vector512.FusedMultiplyAdd(p, z2, Vector512.Create(-7.34990630326855e-04f));
        p = Vector512.FusedMultiplyAdd(p, z2, Vector512.Create(-2.95459980854025e-03f));
        p = Vector512.FusedMultiplyAdd(p, z2, Vector512.Create(-1.60960333262415e-02f));
        p *= z;
        var q = Vector512.FusedMultiplyAdd(Vector512.Create(-1.45660718464996e-05f), z2, Vector512.Create(-2.13374055278905e-04f));
        q = Vector512.FusedMultiplyAdd(q, z2, Vector512.Create(-1.68282697438203e-03f));
        q = Vector512.FusedMultiplyAdd(q, z2, Vector512.Create(-7.37332916720468e-03f));
        q = Vector512.FusedMultiplyAdd(q, z2, Vector512.Create(-1.42647390514189e-02f));
        var half = Vector512.Create(0.5f) * x;
        return Vector512.FusedMultiplyAdd(half, p / q, half);
    }

    /// <summary>In place over a span: <see cref="Gelu(Vector512{float})"/>, the tail by the scalar formula.</summary>
    public static void Gelu(Span<float> x)
    {
        fixed (float* p = x)
        {
            int i = 0;
            for (; i + 16 <= x.Length; i += 16) Gelu(Vector512.Load(p + i)).Store(p + i);
            if (i < x.Length)
            {
                float* tmp = stackalloc float[16];
                for (int q = 0; q < 16; q++) tmp[q] = i + q < x.Length ? p[i + q] : 0f;
                Gelu(Vector512.Load(tmp)).Store(tmp);
                for (int q = 0; i + q < x.Length; q++) p[i + q] = tmp[q];
            }
        }
    }

    /// <summary>res = LayerNorm(res + y) · g + b over one row of n values; y is overwritten with the sum.</summary>
    static void AddNorm(float* res, float* y, float* g, float* b, float eps, int n)
    {
        int i = 0;
        var acc = Vector512<float>.Zero;
        float sum = 0;
        for (; i + 16 <= n; i += 16)
        {
            var v = Vector512.Load(res + i) + Vector512.Load(y + i);
            v.Store(y + i);
            acc += v;
        }
        for (; i < n; i++) { y[i] += res[i]; sum += y[i]; }
        float mean = (Vector512.Sum(acc) + sum) / n;
        var vm = Vector512.Create(mean);
        acc = Vector512<float>.Zero;
        float var = 0;
        for (i = 0; i + 16 <= n; i += 16) { var d = Vector512.Load(y + i) - vm; acc = Vector512.FusedMultiplyAdd(d, d, acc); }
        for (; i < n; i++) { float d = y[i] - mean; var += d * d; }
        float inv = 1f / MathF.Sqrt((Vector512.Sum(acc) + var) / n + eps);
        var vi = Vector512.Create(inv);
        for (i = 0; i + 16 <= n; i += 16)
            Vector512.FusedMultiplyAdd((Vector512.Load(y + i) - vm) * vi, Vector512.Load(g + i), Vector512.Load(b + i)).Store(res + i);
        for (; i < n; i++) res[i] = (y[i] - mean) * inv * g[i] + b[i];
    }
}

/// <summary>Plain loops (double accumulation) for what <see cref="F32Gemm"/> computes; tests compare the two.</summary>
public static class F32GemmReference
{
    /// <summary>y = x Wᵀ + b (W row-major [n, k]), optionally GELU with the exact erf.</summary>
    public static void Multiply(ReadOnlySpan<float> w, ReadOnlySpan<float> bias, int n, int k, ReadOnlySpan<float> x, int m, Span<float> y, bool gelu = false)
    {
        for (int t = 0; t < m; t++)
            for (int o = 0; o < n; o++)
            {
                double s = bias.Length == 0 ? 0 : bias[o];
                for (int c = 0; c < k; c++) s += (double)x[t * k + c] * w[o * k + c];
                if (gelu) s = 0.5 * s * (1 + Erf(s / Math.Sqrt(2)));
                y[t * n + o] = (float)s;
            }
    }

    /// <summary>residual = LayerNorm(residual + x Wᵀ + b) · gamma + beta, row by row, in double.</summary>
    public static void MultiplyAddNorm(ReadOnlySpan<float> w, ReadOnlySpan<float> bias, int n, int k, ReadOnlySpan<float> x, int m,
        Span<float> residual, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, float eps)
    {
        var row = new double[n];
        for (int t = 0; t < m; t++)
        {
            for (int o = 0; o < n; o++)
            {
                double s = bias.Length == 0 ? 0 : bias[o];
                for (int c = 0; c < k; c++) s += (double)x[t * k + c] * w[o * k + c];
                row[o] = s + residual[t * n + o];
            }
            double mean = row.Average(), var = row.Sum(v => (v - mean) * (v - mean)) / n;
            for (int o = 0; o < n; o++) residual[t * n + o] = (float)((row[o] - mean) / Math.Sqrt(var + eps) * gamma[o] + beta[o]);
        }
    }

    /// <summary>erf in double (series below 3, continued fraction of erfc above).</summary>
    public static double Erf(double x)
    {
        double a = Math.Abs(x), r;
        if (a < 3)
        {
            double sum = 0, term = a;
            for (int i = 0; i < 100; i++)
            {
                double add = term / (2 * i + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17 * Math.Abs(sum)) break;
                term *= -a * a / (i + 1);
            }
            r = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            double f = a;
            for (int i = 60; i >= 1; i--) f = a + i / 2.0 / f;
            r = 1 - Math.Exp(-a * a) / Math.Sqrt(Math.PI) / f;
        }
        return x < 0 ? -r : r;
    }
}
