using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Pare.Kernels.Formats;
using Pare.Tensors;

namespace Pare.Kernels.Sparse;

/// <summary>
/// Products of a <see cref="RowGroupSparseMatrix"/> with F32 activations. Per group of rows that share a column mask,
/// x is compressed once by the mask into a packed copy of K columns, and the group's packed rows, which are a dense
/// K-column matrix, are multiplied four rows at a time: the work is per stored value, no expansion per row. Decode on
/// AVX-512: F16 compresses x prescaled once per product by <see cref="F16Kernel"/>'s power of two (<c>vcompressps</c>)
/// and runs <see cref="F16Kernel.Dot4Mapped"/> on the interleaved halves; Q8_0 rounds x once per product to int16
/// (<c>vpcompressw</c> per group, AVX-512 VBMI2) and multiplies with <c>vpmovsxbw</c> + <c>vpmaddwd</c>; group g + 1 is
/// compressed while group g multiplies. Prefill (several tokens) runs the same kernels token by token per group.
/// Machines without AVX-512 (or, for Q8_0, without VBMI2) compress with scalar code and use <see cref="Q8Act"/>'s AVX2
/// kernel with int8 x per 32 packed values (Q8_0), or the scalar path on the packed row (F16, and <c>portable</c>).
/// </summary>
public static unsafe class RowGroupSparseMatMul
{
    /// <summary>Rows per pool chunk (whole groups: rounded up to a multiple of the group).</summary>
    const int RowsPerChunk = 128;

    /// <summary>Which path runs: the machine's best, the one of a machine without AVX-512, or the scalar reference (tests force each).</summary>
    internal enum Tier { Best, WithoutAvx512, Portable }

    internal static bool Fast => Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Avx512BW.IsSupported;

    /// <summary>Y[t, r] = sum_c W[r, c] X[t, c] for t &lt; n.</summary>
    public static void MatMulRows(RowGroupSparseMatrix w, ReadOnlySpan<float> x, int n, Span<float> y, int threads, bool portable = false) =>
        MatMulRows(w, x, n, y, threads, portable ? Tier.Portable : Tier.Best);

    internal static void MatMulRows(RowGroupSparseMatrix w, ReadOnlySpan<float> x, int n, Span<float> y, int threads, Tier tier)
    {
        SparseBlob.CheckProduct(w.Rows, w.Cols, x, n, y);
        if (n == 0) return;
        if (tier == Tier.Best && !(Fast && (w.ValueType != GgmlType.Q8_0 || Avx512Vbmi2.IsSupported))) tier = Tier.WithoutAvx512;
        if (tier == Tier.WithoutAvx512 && !(w.ValueType == GgmlType.Q8_0 && Q8Act.Supported)) tier = Tier.Portable;
        int groupsPerChunk = Math.Max(1, RowsPerChunk / w.GroupRows);
        int chunks = (w.Groups + groupsPerChunk - 1) / groupsPerChunk;
        fixed (float* px = x, py = y)
        {
            var job = new Job
            {
                Blob = (byte*)w.Data, ValueType = w.ValueType, Rows = w.Rows, Cols = w.Cols, GroupRows = w.GroupRows, Groups = w.Groups,
                GroupsPerChunk = groupsPerChunk, X = px, Y = py, N = n, Tier = tier,
            };
            if (tier == Tier.Best && w.ValueType == GgmlType.F16)
            {
                // x times 2^s once per product (the dense F16 kernel's exact power-of-two prescale, chosen from the whole
                // x: a superset of every group's columns), and 2^(112 - s) per token; groups then only compress.
                job.Scaled = ThreadBuffers.Prep(n * w.Cols + n);
                for (int t = 0; t < n; t++) job.Scaled[n * w.Cols + t] = Prescale(px + (long)t * w.Cols, w.Cols, job.Scaled + (long)t * w.Cols);
            }
            if (tier == Tier.Best && w.ValueType == GgmlType.Q8_0)
            {
                // x rounded once per product to int16 with one scale per token (error max |x| / 65534 per value, finer
                // than the dense kernel's int8 per 32); groups compress these 16-bit values (vpcompressw) and multiply
                // them by the int8 weights with vpmaddwd: no quantization per group.
                int words = (n * w.Cols + 1) / 2;
                job.Scaled = ThreadBuffers.Prep(words + n);
                for (int t = 0; t < n; t++) job.Scaled[words + t] = ToInt16(px + (long)t * w.Cols, w.Cols, (short*)job.Scaled + (long)t * w.Cols);
                job.ScaleAt = words;
            }
            KernelThreadPool.Shared.Run(&Chunk, &job, chunks, Math.Max(1, threads));
        }
    }

    /// <summary>q = round(x * 32767 / max |x|) (half to even); returns the step max |x| / 32767.</summary>
    static float ToInt16(float* x, int cols, short* q)
    {
        var vmax = Vector512<float>.Zero;
        for (int i = 0; i < cols; i += 16) vmax = Vector512.Max(vmax, Vector512.Abs(Vector512.Load(x + i)));
        float amax = Q8Act.MaxOf(vmax);
        var id = Vector512.Create(amax != 0 ? 32767 / amax : 0);
        for (int i = 0; i < cols; i += 16)
            Avx512F.ConvertToVector256Int16(Avx512F.ConvertToVector512Int32(Vector512.Load(x + i) * id)).Store(q + i);
        return amax / 32767;
    }

    static readonly Vector512<ushort> Bits16 = Vector512.Create(
        (ushort)1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768,
        1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768);

    /// <summary>16-bit x at the mask's columns in order (vpcompressw, 32 columns per step), zeros up to a multiple of 32; returns that count.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int Compress16(uint* masks, int nb, short* x, short* xp)
    {
        int at = 0;
        for (int b = 0; b < nb; b++)
        {
            uint m = masks[b];
            if (m == 0) continue;
            var w = Vector512.Create(Vector256.Create((ushort)m), Vector256.Create((ushort)(m >> 16)));
            var k = Vector512.Equals(w & Bits16, Bits16).AsInt16();
            Avx512Vbmi2.Compress(Vector512<short>.Zero, k, Vector512.Load(x + 32 * b)).Store(xp + at);
            at += BitOperations.PopCount(m);
        }
        int kp = RowGroupSparseMatrix.PaddedCount(at);
        for (int i = at; i < kp; i++) xp[i] = 0;
        return kp;
    }

    /// <summary>
    /// Four packed Q8_0 rows (k / 32 blocks of f16 scale + 32 quants) times 16-bit packed x: per block and row the
    /// quants sign-extended to 16 bits (vpmovsxbw), one vpmaddwd with x into sixteen int32 sums, converted and
    /// accumulated with the block scale; y = the sums times x's step.
    /// </summary>
    static void Dot4Q8x16(byte* r0, byte* r1, byte* r2, byte* r3, short* xp, int k, float step, float* y)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int nb = k / 32;
        for (int b = 0; b < nb; b++)
        {
            var xv = Vector512.Load(xp + 32 * b);
            nint o = b * 34;
            a0 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)(r0 + o + 2))), xv)), Vector512.Create(Q8Act.Scale(r0 + o)), a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)(r1 + o + 2))), xv)), Vector512.Create(Q8Act.Scale(r1 + o)), a1);
            a2 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)(r2 + o + 2))), xv)), Vector512.Create(Q8Act.Scale(r2 + o)), a2);
            a3 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)(r3 + o + 2))), xv)), Vector512.Create(Q8Act.Scale(r3 + o)), a3);
        }
        y[0] = Vector512.Sum(a0) * step; y[1] = Vector512.Sum(a1) * step;
        y[2] = Vector512.Sum(a2) * step; y[3] = Vector512.Sum(a3) * step;
    }

    /// <summary>dst = x * 2^s with s as <see cref="F16Kernel.Prepare"/> chooses it (max |x| near 2^120); returns 2^(112 - s).</summary>
    static float Prescale(float* x, int cols, float* dst)
    {
        var vmax = Vector512<float>.Zero;
        int v = cols & ~15;
        for (int i = 0; i < v; i += 16) vmax = Vector512.Max(vmax, Vector512.Abs(Vector512.Load(x + i)));
        float maxAbs = Q8Act.MaxOf(vmax);
        for (int i = v; i < cols; i++) maxAbs = MathF.Max(maxAbs, MathF.Abs(x[i]));
        int k = maxAbs == 0 ? 0 : Math.ILogB(maxAbs) + 1;
        int s = Math.Clamp(120 - k, 0, 127);
        var up = Vector512.Create(BitConverter.Int32BitsToSingle((127 + s) << 23));
        for (int i = 0; i < v; i += 16) (Vector512.Load(x + i) * up).Store(dst + i);
        for (int i = v; i < cols; i++) dst[i] = x[i] * up[0];
        return BitConverter.Int32BitsToSingle((127 + 112 - s) << 23);
    }

    /// <summary>Slow, obviously correct: decode each row with the scalar reference, then plain dot products in double.</summary>
    public static void MatMulRowsReference(RowGroupSparseMatrix w, ReadOnlySpan<float> x, int n, Span<float> y)
    {
        var row = new float[w.Cols];
        for (int r = 0; r < w.Rows; r++)
        {
            w.DecodeRow(r, row);
            for (int t = 0; t < n; t++)
            {
                double s = 0;
                for (int c = 0; c < w.Cols; c++) s += (double)row[c] * x[t * w.Cols + c];
                y[t * w.Rows + r] = (float)s;
            }
        }
    }

    struct Job
    {
        public byte* Blob;
        public GgmlType ValueType;
        public int Rows, Cols, GroupRows, Groups, GroupsPerChunk, N;
        public float* X, Y;
        /// <summary>F16, AVX-512: x * 2^s per token ([n x cols]), then 2^(112 - s) per token.</summary>
        public float* Scaled;
        /// <summary>Q8_0, AVX-512: where in <see cref="Scaled"/> (in floats) the per-token steps start; before it, x as int16.</summary>
        public int ScaleAt;
        public Tier Tier;
        public readonly byte* GroupPtr(int g) => Blob + ((long*)(Blob + RowGroupSparseMatrix.HeaderBytes))[g];
    }

    static readonly Vector512<uint> BitsLo = Vector512.Create(1u, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768);
    static readonly Vector512<uint> BitsHi = BitsLo << 16;

    /// <summary>
    /// xp = x at the mask's columns in order, then zeros up to the next multiple of 32; returns that padded count.
    /// AVX-512: per 16 columns one predicate from the broadcast mask word and one vcompressps (full 16-float stores:
    /// xp has 16 floats of slack).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Compress(uint* masks, int nb, float* x, float* xp, bool vector)
    {
        int at = 0;
        if (vector)
        {
            for (int b = 0; b < nb; b++)
            {
                uint m = masks[b];
                if (m == 0) continue;
                var w = Vector512.Create(m);
                var lo = Vector512.Equals(w & BitsLo, BitsLo).AsSingle();
                var hi = Vector512.Equals(w & BitsHi, BitsHi).AsSingle();
                Avx512F.Compress(Vector512<float>.Zero, lo, Vector512.Load(x + 32 * b)).Store(xp + at);
                at += BitOperations.PopCount(m & 0xFFFF);
                Avx512F.Compress(Vector512<float>.Zero, hi, Vector512.Load(x + 32 * b + 16)).Store(xp + at);
                at += BitOperations.PopCount(m >> 16);
            }
        }
        else
        {
            for (int b = 0; b < nb; b++)
            {
                uint m = masks[b];
                while (m != 0)
                {
                    int i = BitOperations.TrailingZeroCount(m);
                    xp[at++] = x[32 * b + i];
                    m &= m - 1;
                }
            }
        }
        int k = RowGroupSparseMatrix.PaddedCount(at);
        for (int i = at; i < k; i++) xp[i] = 0;
        return k;
    }

    /// <summary>
    /// Decode on AVX-512: packed x of group g + 1 is written while group g multiplies. The compress steps store 64 bytes
    /// at 2- or 4-byte offsets; reading them back at once (the first row of the same group) fails store forwarding on
    /// every block and stalled until the stores retired (Q8_0, G = 8, 50%, in L2: 8 -> 25 GB/s without the compress).
    /// </summary>
    /// <summary>
    /// Groups requested ahead into L2 (KernelBench rowgroup, DRAM, G = 8, 70%, load 14: Q8_0 5.1 GB/s with one group
    /// ahead, 7.6 with two, 7.2 with four; F16 unchanged within noise).
    /// </summary>
    const int Ahead = 2;
    static void DecodePipelined(in Job j, int g0, int g1, float* bufA, float* bufB, float* y4)
    {
        int nb = j.Cols / 32, gh = RowGroupSparseMatrix.GroupHeaderBytes(j.Cols);
        bool q8 = j.ValueType == GgmlType.Q8_0;
        int kCur = CompressGroup(j, g0, nb, bufA);
        for (int g = g0; g < g1; g++)
        {
            float* cur = ((g - g0) & 1) == 0 ? bufA : bufB, nxt = cur == bufA ? bufB : bufA;
            byte* gp = j.GroupPtr(g);
            // Two groups ahead (the next one was requested during the previous group; the first pair here).
            for (int a = g == g0 ? 1 : Ahead; a <= Ahead && g + a < g1; a++)
            {
                byte* next = j.GroupPtr(g + a);
                long ahead = j.GroupPtr(g + a + 1) - next;
                for (long o = 0; o < ahead; o += 64) Sse.Prefetch1(next + o);
            }
            int kNext = g + 1 < g1 ? CompressGroup(j, g + 1, nb, nxt) : 0;
            int r0 = g * j.GroupRows, nr = Math.Min(j.GroupRows, j.Rows - r0), k = kCur;
            float* y = j.Y + r0;
            kCur = kNext;
            if (k == 0) { for (int i = 0; i < nr; i++) y[i] = 0; continue; }
            long prb = RowGroupSparseMatrix.PackedRowBytes(j.ValueType, k);
            byte* rows = gp + gh;
            float step = q8 ? j.Scaled[j.ScaleAt] : 0;
            for (int i = 0; i < nr; i += 4)
            {
                int m = Math.Min(4, nr - i);
                byte* a0 = rows + i * prb, a1 = rows + (i + Math.Min(1, m - 1)) * prb;
                byte* a2 = rows + (i + Math.Min(2, m - 1)) * prb, a3 = rows + (i + m - 1) * prb;
                if (q8) Dot4Q8x16(a0, a1, a2, a3, (short*)cur, k, step, y4);
                else F16Kernel.Dot4Mapped(a0, a1, a2, a3, null, null, null, null, cur, cur, k, y4);
                for (int q = 0; q < m; q++) y[i + q] = y4[q];
            }
        }
    }

    /// <summary>Packed x of group g for the AVX-512 decode (Q8_0: int16; F16: prescaled floats, then 2^(112 - s) at [k]); returns k.</summary>
    static int CompressGroup(in Job j, int g, int nb, float* buf)
    {
        uint* masks = (uint*)j.GroupPtr(g);
        if (j.ValueType == GgmlType.Q8_0) return Compress16(masks, nb, (short*)j.Scaled, (short*)buf);
        int k = Compress(masks, nb, j.Scaled, buf, vector: true);
        buf[k] = j.Scaled[j.Cols];
        return k;
    }

    static void Chunk(void* ctx, int chunk)
    {
        ref readonly Job j = ref *(Job*)ctx;
        int g0 = chunk * j.GroupsPerChunk, g1 = Math.Min(j.Groups, g0 + j.GroupsPerChunk);
        int nb = j.Cols / 32, gh = RowGroupSparseMatrix.GroupHeaderBytes(j.Cols);
        int kmax = RowGroupSparseMatrix.PaddedCount(j.Cols);
        bool q8 = j.ValueType == GgmlType.Q8_0, best = j.Tier == Tier.Best;
        // F16 on a CPU where float denormals cost a microcode assist: the dense kernel's subnormal maps need x unscaled,
        // in the rows' storage order (interleaved per 32).
        bool f16Exact = !q8 && best && !F16Kernel.DenormalsFree;
        int prepFloats = q8 ? Q8Act.PrepFloats(kmax) : 0;
        // One thread buffer: packed x (kmax + 16 slack + 1), the prepared packed x (Q8_0), unscaled interleaved x (F16 exact).
        float* xp = ThreadBuffers.Decoded(4 * (kmax + 32) + prepFloats);
        float* xi = xp + kmax + 32, tmp = xi + kmax + 32, xp2 = tmp + kmax + 32, prep = xp2 + kmax + 32;
        float* y4 = stackalloc float[4];
        if (j.N == 1 && best && !f16Exact) { DecodePipelined(j, g0, g1, xp, xp2, y4); return; }
        for (int g = g0; g < g1; g++)
        {
            byte* gp = j.GroupPtr(g);
            int r0 = g * j.GroupRows, nr = Math.Min(j.GroupRows, j.Rows - r0);
            int k = RowGroupSparseMatrix.PaddedCount((int)((uint*)gp)[nb]);
            long prb = RowGroupSparseMatrix.PackedRowBytes(j.ValueType, k);
            byte* rows = gp + gh;
            // The next group follows this one in the blob: request it into L2 while this one computes (its rows are
            // short, so the hardware prefetchers start each one late).
            if (g + 1 < g1)
            {
                byte* next = j.GroupPtr(g + 1);
                long ahead = j.GroupPtr(g + 2) - next;
                for (long o = 0; o < ahead; o += 64) Sse.Prefetch1(next + o);
            }
            for (int t = 0; t < j.N; t++)
            {
                float* x = j.X + (long)t * j.Cols, y = j.Y + (long)t * j.Rows + r0;
                if (k == 0) { for (int i = 0; i < nr; i++) y[i] = 0; continue; }
                if (j.Tier == Tier.Portable)
                {
                    Compress((uint*)gp, nb, x, xp, vector: false);
                    for (int i = 0; i < nr; i++)
                    {
                        byte* row = rows + i * prb;
                        float s = 0;
                        for (int c = 0; c < k; c++) s += RowGroupSparseMatrix.PackedValue(row, j.ValueType, c) * xp[c];
                        y[i] = s;
                    }
                    continue;
                }
                if (q8 && best)
                {
                    Compress16((uint*)gp, nb, (short*)j.Scaled + (long)t * j.Cols, (short*)xp);
                    float step = j.Scaled[j.ScaleAt + t];
                    for (int i = 0; i < nr; i += 4)
                    {
                        int m = Math.Min(4, nr - i);
                        byte* a0 = rows + i * prb, a1 = rows + (i + Math.Min(1, m - 1)) * prb;
                        byte* a2 = rows + (i + Math.Min(2, m - 1)) * prb, a3 = rows + (i + m - 1) * prb;
                        Dot4Q8x16(a0, a1, a2, a3, (short*)xp, k, step, y4);
                        for (int q = 0; q < m; q++) y[i + q] = y4[q];
                    }
                    continue;
                }
                if (q8)
                {
                    Compress((uint*)gp, nb, x, xp, vector: false);
                    Q8Act.Quantize(xp, k, prep);
                }
                else
                {
                    Compress((uint*)gp, nb, j.Scaled + (long)t * j.Cols, xp, vector: true);
                    xp[k] = j.Scaled[(long)j.N * j.Cols + t];
                    if (f16Exact)
                    {
                        Compress((uint*)gp, nb, x, tmp, vector: true);
                        for (int c = 0; c < k; c++) xi[RowGroupSparseMatrix.F16Slot(c)] = tmp[c];
                    }
                }
                for (int i = 0; i < nr; i += 4)
                {
                    int m = Math.Min(4, nr - i);
                    byte* a0 = rows + i * prb, a1 = rows + (i + Math.Min(1, m - 1)) * prb;
                    byte* a2 = rows + (i + Math.Min(2, m - 1)) * prb, a3 = rows + (i + m - 1) * prb;
                    if (q8) Q8Act.Dot4<Q8_0Kernel>(a0, a1, a2, a3, prep, k, y4);
                    else if (f16Exact) F16Kernel.Dot4(a0, a1, a2, a3, xi, xp, k, y4);
                    else F16Kernel.Dot4Mapped(a0, a1, a2, a3, null, null, null, null, xp, xp, k, y4);
                    for (int q = 0; q < m; q++) y[i + q] = y4[q];
                }
            }
        }
    }
}
