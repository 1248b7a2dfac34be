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
/// K-column matrix, are multiplied four rows (one quad) at a time: the work is per stored value, no expansion per row.
/// A quad's rows are stored interleaved by block, so a run of groups is one contiguous stream; a thread takes its
/// chunk as <see cref="Streams"/> such runs in turn, and the quad kernels request their stream ahead
/// (Q8_0 <see cref="PrefetchBytes"/> into L2, F16 <see cref="F16PrefetchBytes"/> into L1). Decode on AVX-512: F16 compresses x
/// prescaled once per product by <see cref="F16Kernel"/>'s power of two (<c>vpcompressd</c>) and converts the halves
/// as the dense F16 kernel does; Q8_0 rounds x once per product to int16 (<c>vpcompressw</c> per group, AVX-512
/// VBMI2) and multiplies with <c>vpmovsxbw</c> + <c>vpmaddwd</c>, the quad's four scales converted in one vector;
/// group g + 1 is compressed while group g multiplies. Prefill (several tokens) runs the same kernels token by token
/// per group. Machines without AVX-512 (or, for Q8_0, without VBMI2) compress with scalar code, copy each quad's rows
/// out to contiguous rows and use <see cref="Q8Act"/>'s AVX2 kernel with int8 x per 32 packed values (Q8_0), or the
/// scalar path (F16, and <c>portable</c>).
/// </summary>
public static unsafe class RowGroupSparseMatMul
{
    /// <summary>
    /// How far ahead of the Q8_0 quad kernel's reads its stream is requested into L2, in bytes (a group's rows are one
    /// contiguous stream, so this runs across quad and group boundaries). KernelBench rowgroup, DRAM, G = 32, one
    /// thread, load 10: Q8_0 70% 10.4-13.6 GB/s without, 15.8-17.4 with 1024 bytes (F16, 1024 bytes into L2
    /// was no better than none; it takes <see cref="F16PrefetchBytes"/> into L1).
    /// </summary>
    const int PrefetchBytes = 1024;

    /// <summary>
    /// The same for the F16 quad kernel (<c>prefetcht0</c>, four lines per 256-byte quad block). KernelBench
    /// rg-variants, DRAM, G = 32, one thread, load 10-16, GB/s of the row-group bytes at 50% / 70%: none 18.0 / 19.7,
    /// 2048 bytes 20.8 / 22.0, 4096 21.7 / 23.3, 8192 21.5 / 22.8, 16384 20.5 / 22.9; <c>prefetcht1</c> at 8192
    /// 19.2 / 19.8. A quad block is one 256-byte step of a single stream, so the hardware prefetchers (which stop at
    /// 4 KB pages) leave it waiting at every page; the dense kernel reads four streams at once and needs none.
    /// </summary>
    const int F16PrefetchBytes = 4096;

    /// <summary>
    /// Contiguous runs of groups a thread's decode chunk is split into, taken in turn: the thread reads that many long
    /// streams at once (as the dense decode reads four). Same bench: 2 ahead of 1 and 4 (noisy at that load: F16 70%
    /// 20.1 / 14.5 / 16.1 GB/s, Q8_0 70% 17.4 / 15.8 / 14.1 GB/s).
    /// </summary>
    const int Streams = 2;

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
        // Whole groups per chunk, as many rows as the dense decode's chunks (long streams, a few chunks per thread).
        int groupsPerChunk = Math.Max(1, MatMul.StreamChunkRows(w.Rows, Math.Max(1, threads)) / w.GroupRows);
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

    /// <summary>Per 16-bit lane of a broadcast mask word, the bit that keeps that lane's column (<see cref="RowGroupSparseMatrix.LaneBit"/>).</summary>
    static readonly Vector512<ushort> LaneBits16 = Vector512.Create(
        (ushort)1, 1, 2, 2, 4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128,
        256, 256, 512, 512, 1024, 1024, 2048, 2048, 4096, 4096, 8192, 8192, 16384, 16384, 32768, 32768);

    /// <summary>
    /// 16-bit x at the mask's columns in order (vpcompressw, 32 columns per step: one broadcast of the lane-order mask
    /// word and one test give the predicate), zeros up to a multiple of 32; returns that count.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int Compress16(uint* masks, int nb, short* x, short* xp)
    {
        int at = 0;
        for (int b = 0; b < nb; b++)
        {
            uint m = masks[b];
            if (m == 0) continue;
            var k = Vector512.Equals(Vector512.Create(m).AsUInt16() & LaneBits16, LaneBits16).AsInt16();
            Avx512Vbmi2.Compress(Vector512<short>.Zero, k, Vector512.Load(x + 32 * b)).Store(xp + at);
            at += BitOperations.PopCount(m);
        }
        int kp = RowGroupSparseMatrix.PaddedCount(at);
        for (int i = at; i < kp; i++) xp[i] = 0;
        return kp;
    }

    /// <summary>
    /// One quad of Q8_0 rows (<paramref name="m"/> of them, interleaved by block: per block the m f16 scales, then the
    /// m x 32 quants) times 16-bit packed x: per block and row the quants sign-extended to 16 bits (vpmovsxbw), one
    /// vpmaddwd with x into sixteen int32 sums, converted and accumulated with the block scale (the quad's scales
    /// converted together); y = the sums times x's step. Rows past m repeat the last row and are not written.
    /// </summary>
    static void QuadQ8x16(byte* p, int m, int nb, short* xp, float step, float* y)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        long stride = 34L * m;
        int o1 = 2 * m + 32 * Math.Min(1, m - 1), o2 = 2 * m + 32 * Math.Min(2, m - 1), o3 = 2 * m + 32 * (m - 1), o0 = 2 * m;
        int s1 = Math.Min(1, m - 1), s2 = Math.Min(2, m - 1), s3 = m - 1;
        var expMask = Vector128.Create(unchecked((int)0x8FFFFFFF));
        var up = Vector128.Create(Fp16.Pow2_112);
        byte* pf = p + PrefetchBytes;
        for (int b = 0; b < nb; b++)
        {
            byte* q = p + b * stride;
            Sse.Prefetch1(pf + b * stride); Sse.Prefetch1(pf + b * stride + 64); Sse.Prefetch1(pf + b * stride + 128);
            var xv = Vector512.Load(xp + 32 * b);
            // The quad's f16 scales as floats (Q8Act.Scale's bit trick on four at once; lanes past m are not used).
            var sc = ((Sse41.ConvertToVector128Int32((short*)q) << 13) & expMask).AsSingle() * up;
            a0 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)(q + o0))), xv)), Vector512.Create(sc.GetElement(0)), a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)(q + o1))), xv)), Vector512.Create(sc.GetElement(s1)), a1);
            a2 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)(q + o2))), xv)), Vector512.Create(sc.GetElement(s2)), a2);
            a3 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)(q + o3))), xv)), Vector512.Create(sc.GetElement(s3)), a3);
        }
        y[0] = Vector512.Sum(a0) * step;
        if (m > 1) y[1] = Vector512.Sum(a1) * step;
        if (m > 2) y[2] = Vector512.Sum(a2) * step;
        if (m > 3) y[3] = Vector512.Sum(a3) * step;
    }

    /// <summary>
    /// One quad of F16 rows (<paramref name="m"/> of them, interleaved by 64-byte block) times prescaled packed x
    /// (<paramref name="xp"/>[k] = 2^(112 - s)): the dense F16 kernel's fast conversion (even halves through vpmaddwd,
    /// odd ones by a shift; each half becomes a float 2^-112 times its value, subnormals included) and FMAs, even and
    /// odd halves accumulated apart, the stream requested <see cref="F16PrefetchBytes"/> ahead, the four sums reduced
    /// together (<see cref="Sum4"/>). Rows past m repeat the last row and are not written.
    /// </summary>
    static void QuadF16(byte* p, int m, int nb, float* xp, float* y)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
        var evenMask = Vector512.Create(unchecked((int)0x8FFFFFFF));
        var oddMask = Vector512.Create(unchecked((int)0x8FFFE000));
        // F16Kernel.Even's vpmaddwd factor, held here: built inside the loop, the JIT broadcast it on every block.
        var shift = Vector512.Create(1 << 13).AsInt16();
        long stride = 64L * m;
        int o1 = 64 * Math.Min(1, m - 1), o2 = 64 * Math.Min(2, m - 1), o3 = 64 * (m - 1);
        for (int b = 0; b < nb; b++)
        {
            byte* q = p + b * stride, f = q + F16PrefetchBytes;
            Sse.Prefetch0(f); Sse.Prefetch0(f + 64); Sse.Prefetch0(f + 128); Sse.Prefetch0(f + 192);
            var xe = Vector512.Load(xp + 32 * b);
            var xo = Vector512.Load(xp + 32 * b + 16);
            var h0 = Vector512.Load((int*)q); var h1 = Vector512.Load((int*)(q + o1));
            var h2 = Vector512.Load((int*)(q + o2)); var h3 = Vector512.Load((int*)(q + o3));
            a0 = Vector512.FusedMultiplyAdd(Even(h0, shift, evenMask), xe, a0); b0 = Vector512.FusedMultiplyAdd(F16Kernel.Odd(h0, oddMask), xo, b0);
            a1 = Vector512.FusedMultiplyAdd(Even(h1, shift, evenMask), xe, a1); b1 = Vector512.FusedMultiplyAdd(F16Kernel.Odd(h1, oddMask), xo, b1);
            a2 = Vector512.FusedMultiplyAdd(Even(h2, shift, evenMask), xe, a2); b2 = Vector512.FusedMultiplyAdd(F16Kernel.Odd(h2, oddMask), xo, b2);
            a3 = Vector512.FusedMultiplyAdd(Even(h3, shift, evenMask), xe, a3); b3 = Vector512.FusedMultiplyAdd(F16Kernel.Odd(h3, oddMask), xo, b3);
        }
        var sums = Sum4(a0 + b0, a1 + b1, a2 + b2, a3 + b3) * Vector128.Create(xp[32 * nb]);
        if (m == 4) { sums.Store(y); return; }
        for (int r = 0; r < m; r++) y[r] = sums.GetElement(r);
    }

    /// <summary><see cref="F16Kernel.Even"/> with its vpmaddwd factor [2^13, 0] passed in (hoisted out of the loop).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Even(Vector512<int> h, Vector512<short> shift, Vector512<int> evenMask) =>
        (Avx512BW.MultiplyAddAdjacent(h.AsInt16(), shift) & evenMask).AsSingle();

    /// <summary>
    /// The sums of four vectors as one vector: 128-bit lanes paired across the four (vshuff32x4, two levels), then the
    /// four floats within each lane: 18 instructions where four Vector512.Sum took ~110 (the loop of a quad of 640 packed
    /// columns runs ~800).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector128<float> Sum4(Vector512<float> s0, Vector512<float> s1, Vector512<float> s2, Vector512<float> s3)
    {
        var t01 = Avx512F.Shuffle4x128(s0, s1, 0x44) + Avx512F.Shuffle4x128(s0, s1, 0xEE); // s0 lanes 0+2, 1+3, s1 lanes 0+2, 1+3
        var t23 = Avx512F.Shuffle4x128(s2, s3, 0x44) + Avx512F.Shuffle4x128(s2, s3, 0xEE);
        var u = Avx512F.Shuffle4x128(t01, t23, 0x88) + Avx512F.Shuffle4x128(t01, t23, 0xDD); // lane r: row r's four partial sums
        u += Avx512F.Permute4x32(u, 0xB1);
        u += Avx512F.Permute4x32(u, 0x4E);
        return Avx512F.PermuteVar16x32(u, Vector512.Create(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)).GetLower().GetLower();
    }

    /// <summary>
    /// Copies a quad's <paramref name="m"/> interleaved rows out to <paramref name="dst"/> as m contiguous rows in the
    /// dense layout of <paramref name="k"/> columns (F16: the interleaved 64-byte blocks; Q8_0: 34-byte blocks of
    /// scale and quants), for the kernels of machines without AVX-512 and the F16 subnormal path.
    /// </summary>
    static void Deinterleave(GgmlType t, byte* quad, int m, int k, byte* dst)
    {
        int nb = k / 32;
        long prb = RowGroupSparseMatrix.PackedRowBytes(t, k);
        for (int l = 0; l < m; l++)
            for (int b = 0; b < nb; b++)
            {
                var (values, scale) = RowGroupSparseMatrix.BlockAt(t, m, k, l, b);
                byte* d = dst + l * prb + b * RowGroupSparseMatrix.BlockBytes(t);
                if (t == GgmlType.F16) { Buffer.MemoryCopy(quad + values, d, 64, 64); continue; }
                *(ushort*)d = *(ushort*)(quad + scale);
                Buffer.MemoryCopy(quad + values, d + 2, 32, 32);
            }
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

    /// <summary>Per float lane of a broadcast mask word, the bit of its column: columns 0-15 of the block, then 16-31.</summary>
    static readonly Vector512<uint> BitsLo = Vector512.Create(
        1u << 0, 1u << 16, 1u << 1, 1u << 17, 1u << 2, 1u << 18, 1u << 3, 1u << 19, 1u << 4, 1u << 20, 1u << 5, 1u << 21, 1u << 6, 1u << 22, 1u << 7, 1u << 23);
    static readonly Vector512<uint> BitsHi = BitsLo << 8;

    /// <summary>Mask bits of columns 0-15 of a block (<see cref="RowGroupSparseMatrix.LaneBit"/>).</summary>
    const uint LowColumns = 0x00FF00FF;

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
            // On int lanes (the floats' bits) with the bit patterns in registers: compressing floats with a predicate
            // reinterpreted from the compare made the JIT move each predicate through a vector and back
            // (vpmovm2d + vpmovd2m) and reload both patterns per block.
            var bitsLo = BitsLo.AsInt32();
            var bitsHi = BitsHi.AsInt32();
            for (int b = 0; b < nb; b++)
            {
                uint m = masks[b];
                if (m == 0) continue;
                var w = Vector512.Create((int)m);
                var lo = Vector512.Equals(w & bitsLo, bitsLo);
                var hi = Vector512.Equals(w & bitsHi, bitsHi);
                Avx512F.Compress(Vector512<int>.Zero, lo, Vector512.Load((int*)x + 32 * b)).Store((int*)xp + at);
                at += BitOperations.PopCount(m & LowColumns);
                Avx512F.Compress(Vector512<int>.Zero, hi, Vector512.Load((int*)x + 32 * b + 16)).Store((int*)xp + at);
                at += BitOperations.PopCount(m & ~LowColumns);
            }
        }
        else
        {
            for (int b = 0; b < nb; b++)
                for (int i = 0; i < 32; i++)
                    if (RowGroupSparseMatrix.Keeps(masks[b], i)) xp[at++] = x[32 * b + i];
        }
        int k = RowGroupSparseMatrix.PaddedCount(at);
        for (int i = at; i < k; i++) xp[i] = 0;
        return k;
    }

    /// <summary>The quads of one group on AVX-512, x already compressed for it (Q8_0: int16 with <paramref name="step"/>).</summary>
    static void GroupBest(in Job j, byte* rows, int nr, int k, float* xp, float step, float* y)
    {
        int nb = k / 32;
        long quadBytes = 4 * RowGroupSparseMatrix.PackedRowBytes(j.ValueType, k);
        for (int i = 0; i < nr; i += 4)
        {
            byte* quad = rows + (i >> 2) * quadBytes;
            int m = Math.Min(4, nr - i);
            if (j.ValueType == GgmlType.Q8_0) QuadQ8x16(quad, m, nb, (short*)xp, step, y + i);
            else QuadF16(quad, m, nb, xp, y + i);
        }
    }

    /// <summary>
    /// Decode on AVX-512: packed x of group g + 1 is written while group g multiplies. The compress steps store 64 bytes
    /// at 2- or 4-byte offsets; reading them back at once (the first row of the same group) fails store forwarding on
    /// every block and stalled until the stores retired (Q8_0, G = 8, 50%, in L2: 8 -> 25 GB/s without the compress).
    /// </summary>
    static void DecodePipelined(in Job j, int g0, int g1, float* bufA, float* bufB)
    {
        int nb = j.Cols / 32, gh = RowGroupSparseMatrix.GroupHeaderBytes(j.Cols), n = g1 - g0;
        float step = j.ValueType == GgmlType.Q8_0 ? j.Scaled[j.ScaleAt] : 0;
        // The chunk's groups as Streams contiguous runs, taken in turn: the thread reads that many long streams at once.
        int streams = Math.Min(Streams, n), run = (n + streams - 1) / streams;
        int* order = stackalloc int[n];
        for (int i = 0, at = 0; at < n; i++)
        {
            int g = g0 + i % streams * run + i / streams;
            if (g < g0 + Math.Min(n, (i % streams + 1) * run)) order[at++] = g;
        }
        int kCur = CompressGroup(j, order[0], nb, bufA);
        for (int i = 0; i < n; i++)
        {
            int g = order[i];
            float* cur = (i & 1) == 0 ? bufA : bufB, nxt = cur == bufA ? bufB : bufA;
            int kNext = i + 1 < n ? CompressGroup(j, order[i + 1], nb, nxt) : 0;
            int r0 = g * j.GroupRows, nr = Math.Min(j.GroupRows, j.Rows - r0), k = kCur;
            kCur = kNext;
            float* y = j.Y + r0;
            if (k == 0) { for (int r = 0; r < nr; r++) y[r] = 0; continue; }
            GroupBest(j, j.GroupPtr(g) + gh, nr, k, cur, step, y);
        }
    }

    /// <summary>Packed x of group g for the AVX-512 decode (Q8_0: int16; F16: prescaled floats, then 2^(112 - s) at [k]); returns k.</summary>
    static int CompressGroup(in Job j, int g, int nb, float* buf)
    {
        uint* masks = (uint*)j.GroupPtr(g);
        if (j.ValueType == GgmlType.Q8_0) return Compress16(masks, nb, (short*)j.Scaled, (short*)buf);
        // F16: the group's header and first F16PrefetchBytes requested now, a group ahead of the quad kernel, whose
        // own prefetch only runs ahead within the run it reads (the next group comes from the other run). KernelBench,
        // DRAM, G = 32, one thread, load 15-17, GB/s at 50% / 70%: 21.9 / 19.4 and 21.6 / 20.8 without, 22.2 / 22.2
        // and 22.8 / 21.9 with 4 KB.
        for (int o = 0; o < RowGroupSparseMatrix.GroupHeaderBytes(j.Cols) + F16PrefetchBytes; o += 64) Sse.Prefetch0((byte*)masks + o);
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
        // in the rows' storage order (interleaved per 32), and contiguous rows.
        bool f16Exact = !q8 && best && !F16Kernel.DenormalsFree;
        int prepFloats = q8 ? Q8Act.PrepFloats(kmax) : 0;
        long quadFloats = RowGroupSparseMatrix.PackedRowBytes(j.ValueType, kmax); // 4 rows' bytes, in floats
        // One thread buffer: packed x (kmax + 16 slack + 1) twice, unscaled x and its interleaved copy (F16 exact),
        // the prepared packed x (Q8_0), four contiguous rows (paths that read a quad's rows apart).
        float* xp = ThreadBuffers.Decoded((int)(4 * (kmax + 32) + prepFloats + quadFloats));
        float* xi = xp + kmax + 32, tmp = xi + kmax + 32, xp2 = tmp + kmax + 32, prep = xp2 + kmax + 32;
        byte* rows4 = (byte*)(prep + prepFloats);
        float* y4 = stackalloc float[4];
        if (j.N == 1 && best && !f16Exact) { DecodePipelined(j, g0, g1, xp, xp2); return; }
        for (int g = g0; g < g1; g++)
        {
            byte* gp = j.GroupPtr(g);
            int r0 = g * j.GroupRows, nr = Math.Min(j.GroupRows, j.Rows - r0);
            int k = RowGroupSparseMatrix.PaddedCount((int)((uint*)gp)[nb]);
            long quadBytes = 4 * RowGroupSparseMatrix.PackedRowBytes(j.ValueType, k), prb = quadBytes / 4;
            byte* rows = gp + gh;
            for (int t = 0; t < j.N; t++)
            {
                float* x = j.X + (long)t * j.Cols, y = j.Y + (long)t * j.Rows + r0;
                if (k == 0) { for (int i = 0; i < nr; i++) y[i] = 0; continue; }
                if (j.Tier == Tier.Portable)
                {
                    Compress((uint*)gp, nb, x, xp, vector: false);
                    for (int i = 0; i < nr; i++)
                    {
                        float s = 0;
                        for (int c = 0; c < k; c++) s += RowGroupSparseMatrix.PackedValue(rows, j.ValueType, nr, k, i, c) * xp[c];
                        y[i] = s;
                    }
                    continue;
                }
                if (best && !f16Exact)
                {
                    float step = 0;
                    if (q8) { Compress16((uint*)gp, nb, (short*)j.Scaled + (long)t * j.Cols, (short*)xp); step = j.Scaled[j.ScaleAt + t]; }
                    else { Compress((uint*)gp, nb, j.Scaled + (long)t * j.Cols, xp, vector: true); xp[k] = j.Scaled[(long)j.N * j.Cols + t]; }
                    GroupBest(j, rows, nr, k, xp, step, y);
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
                    Compress((uint*)gp, nb, x, tmp, vector: true);
                    for (int c = 0; c < k; c++) xi[RowGroupSparseMatrix.F16Slot(c)] = tmp[c];
                }
                for (int i = 0; i < nr; i += 4)
                {
                    int m = Math.Min(4, nr - i);
                    Deinterleave(j.ValueType, rows + (i >> 2) * quadBytes, m, k, rows4);
                    byte* a0 = rows4, a1 = rows4 + Math.Min(1, m - 1) * prb, a2 = rows4 + Math.Min(2, m - 1) * prb, a3 = rows4 + (m - 1) * prb;
                    if (q8) Q8Act.Dot4<Q8_0Kernel>(a0, a1, a2, a3, prep, k, y4);
                    else F16Kernel.Dot4(a0, a1, a2, a3, xi, xp, k, y4);
                    for (int q = 0; q < m; q++) y[i + q] = y4[q];
                }
            }
        }
    }
}
