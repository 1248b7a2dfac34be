using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Pare.Kernels.Formats;
using Pare.Tensors;

namespace Pare.Kernels.Sparse;

/// <summary>
/// Products of a <see cref="SparseMatrix"/> with F32 activations, straight from the compact format.
/// Decode (one token): each thread streams four rows at once; per 32 columns the row's mask expands the packed values
/// into place (AVX-512 VBMI2 <c>vpexpandw</c>/<c>vpexpandb</c>, F32 <c>vexpandps</c>) and one FMA chain per row
/// consumes them; F16 uses the same prescaled-x trick as the dense F16 kernel. Prefill (several tokens): four rows are
/// expanded once into a small buffer, then multiplied with four tokens at a time. A scalar reference
/// (<see cref="MatMulRowsReference"/>) sits beside them; machines without AVX-512 VBMI2 use it.
/// </summary>
public static unsafe class SparseMatMul
{
    // Rows per pool chunk: a thread prefetches the next rows of its own chunk only, so long chunks leave fewer cold starts
    // (852M model, whole decode, 5 rounds: 128 rows 2.03x / 2.04x dense at 70% for F16 / Q8_0, 64 rows 2.01x / 1.97x;
    // micro-benchmark, F16: 64 rows 1.34x / 1.72x at 50% / 70%, 16 rows 1.2x / 1.5x).
    const int RowsPerChunk = 128;

    /// <summary>
    /// The bytes a thread prefetches (into L2) while it multiplies rows r and rb of its chunk: the next pair of rows
    /// (they follow in the blob), or the pair after it when pairs are under 3 KB (Q8_0, narrow rows), so that about
    /// 3 KB or more are requested ahead. The value pointers advance by data-dependent steps, which the hardware
    /// prefetchers follow late; measured on the 852M model's 5632 x 2048 matrices (2 threads): 1.2x / 1.5x dense at
    /// 50% / 70% (F16) without, 1.4x / 1.8x with.
    /// </summary>
    static byte* PrefetchWindow(in Job j, int r, int rb, int r1, out long bytes)
    {
        long pairBytes = j.RowPtr(rb + 1) - j.RowPtr(r);
        int pairs = pairBytes < 3072 ? 2 : 1;
        int first = rb + 1 + 2 * (pairs - 1), end = rb + 1 + 2 * pairs;
        bytes = 0;
        if (end > r1) return null; // past this thread's chunk: another thread's rows
        bytes = j.RowPtr(end) - j.RowPtr(first);
        return j.RowPtr(first);
    }

    internal static bool Fast => Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Avx512BW.IsSupported && Avx512Vbmi2.IsSupported && Avx512Vbmi2.VL.IsSupported;

    /// <summary>Y[t, r] = sum_c W[r, c] X[t, c] for t &lt; n.</summary>
    public static void MatMulRows(SparseMatrix w, ReadOnlySpan<float> x, int n, Span<float> y, int threads, bool portable = false) =>
        MatMulRows(w, x, n, y, threads, portable ? Tier.Portable : Tier.Best);

    /// <summary>Which kernels may run: the machine's best, those of a machine without AVX-512 VBMI2, or the scalar reference (tests force each).</summary>
    internal enum Tier { Best, WithoutVbmi2, Portable }

    internal static void MatMulRows(SparseMatrix w, ReadOnlySpan<float> x, int n, Span<float> y, int threads, Tier tier)
    {
        bool portable = tier == Tier.Portable, fast = tier == Tier.Best && Fast;
        SparseBlob.CheckProduct(w.Rows, w.Cols, x, n, y);
        if (n == 0) return;
        threads = Math.Max(1, threads);
        fixed (float* px = x, py = y)
        {
            var job = new Job { Blob = (byte*)w.Data, ValueType = w.ValueType, Rows = w.Rows, Cols = w.Cols, X = px, Y = py, N = n };
            int chunks = (w.Rows + RowsPerChunk - 1) / RowsPerChunk;
            // Q8_0 decode without VBMI2 (AVX2 machines, AVX-512 without VBMI2): rows decoded back to Q8_0 blocks and the
            // dense int8 kernel, so the numbers stay the dense kernel's.
            if (!portable && !fast && n == 1 && w.ValueType == GgmlType.Q8_0 && MatMul.QuantizesActivations(GgmlType.Q8_0))
            {
                job.Prep = ThreadBuffers.Prep(Q8Act.PrepFloats(w.Cols));
                Q8Act.Quantize(px, w.Cols, job.Prep);
                KernelThreadPool.Shared.Run(&VecChunkQ8Decoded, &job, chunks, threads);
                return;
            }
            if (portable || !fast) { KernelThreadPool.Shared.Run(&ReferenceChunk, &job, chunks, threads); return; }
            // Q8_0 prefill: the dense integer GEMM on rows decoded back to Q8_0 blocks (expanding to F32 was 2.3x slower).
            if (n >= Int8Gemm.MinTokens && w.ValueType == GgmlType.Q8_0 && Int8Gemm.Supports(GgmlType.Q8_0))
            {
                Int8Gemm.MatMulRowsCompactQ8(w, px, n, py, threads);
                return;
            }
            if (n == 1 && (w.ValueType != GgmlType.Q8_0 || Q8Act.Supported))
            {
                switch (w.ValueType)
                {
                    case GgmlType.F16:
                        job.Prep = ThreadBuffers.Prep(F16Kernel.PrepFloats(w.Cols));
                        PrepareF16(px, w.Cols, job.Prep);
                        KernelThreadPool.Shared.Run(&VecChunkF16, &job, chunks, threads);
                        break;
                    case GgmlType.Q8_0:
                        job.Prep = ThreadBuffers.Prep(Q8Act.PrepFloats(w.Cols));
                        Q8Act.Quantize(px, w.Cols, job.Prep);
                        KernelThreadPool.Shared.Run(&VecChunkQ8, &job, chunks, threads);
                        break;
                    default: KernelThreadPool.Shared.Run(&VecChunkF32, &job, chunks, threads); break;
                }
                return;
            }
            KernelThreadPool.Shared.Run(&RowsChunk, &job, chunks, threads);
        }
    }

    /// <summary>Slow, obviously correct: decode each row with the scalar reference, then plain dot products.</summary>
    public static void MatMulRowsReference(SparseMatrix w, ReadOnlySpan<float> x, int n, Span<float> y)
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

    /// <summary>Everything a chunk of rows needs (unmanaged: it lives on the caller's stack while the pool runs).</summary>
    struct Job
    {
        public byte* Blob;
        public GgmlType ValueType;
        public int Rows, Cols;
        public float* X, Y, Prep;
        public int N;
        public readonly int Blocks => Cols / 32;
        public readonly byte* RowPtr(int r) => Blob + ((long*)(Blob + SparseMatrix.HeaderBytes))[r];
    }

    /// <summary>Q8_0 decode without VBMI2: four rows at a time decoded to dense Q8_0 blocks, then <see cref="Q8Act.Dot4"/>.</summary>
    static void VecChunkQ8Decoded(void* ctx, int chunk)
    {
        ref readonly Job j = ref *(Job*)ctx;
        int r0 = chunk * RowsPerChunk, r1 = Math.Min(r0 + RowsPerChunk, j.Rows);
        int rowBytes = j.Blocks * 34;
        byte* buf = (byte*)ThreadBuffers.Decoded(rowBytes + 1); // 4 rows of rowBytes bytes
        float* res = stackalloc float[4];
        for (int r = r0; r < r1; r += 4)
        {
            int m = Math.Min(4, r1 - r);
            for (int k = 0; k < m; k++) DecodeQ8BlocksScalar(j.RowPtr(r + k), j.Cols, buf + k * rowBytes);
            Q8Act.Dot4<Q8_0Kernel>(buf, buf + Math.Min(1, m - 1) * rowBytes, buf + Math.Min(2, m - 1) * rowBytes,
                buf + Math.Min(3, m - 1) * rowBytes, j.Prep, j.Cols, res);
            for (int k = 0; k < m; k++) j.Y[r + k] = res[k];
        }
    }

    /// <summary>A compact Q8_0 row (at s) back to dense Q8_0 blocks, without vector expansion.</summary>
    static void DecodeQ8BlocksScalar(byte* s, int cols, byte* dst)
    {
        int nb = cols / 32;
        byte* v = s + SparseMatrix.RowHeaderBytes(GgmlType.Q8_0, nb);
        ushort* scales = (ushort*)(s + SparseMatrix.MaskBytes(GgmlType.Q8_0, nb));
        for (int b = 0; b < nb; b++, dst += 34)
        {
            *(ushort*)dst = scales[b];
            for (int i = 0; i < 32; i++)
            {
                var (word, bit) = SparseMatrix.MaskBit(GgmlType.Q8_0, 32 * b + i); // values are stored in column order
                dst[2 + i] = (*(ulong*)(s + word) >> bit & 1) != 0 ? *v++ : (byte)0;
            }
        }
    }

    static void ReferenceChunk(void* ctx, int chunk)
    {
        ref readonly Job j = ref *(Job*)ctx;
        ref readonly Job m = ref j;
        int r0 = chunk * RowsPerChunk, r1 = Math.Min(r0 + RowsPerChunk, m.Rows);
        var row = new Span<float>(ThreadBuffers.Rows(m.Cols), m.Cols);
        for (int r = r0; r < r1; r++)
        {
            SparseMatrix.DecodeRow(m.RowPtr(r), m.ValueType, m.Cols, row);
            for (int t = 0; t < j.N; t++)
                j.Y[(long)t * m.Rows + r] = MatMul.DotPortable(row, new ReadOnlySpan<float>(j.X + (long)t * m.Cols, m.Cols));
        }
    }

    // Mask words become expansion predicates with one broadcast load and one vector test: lane i tests bit c_i of the
    // lane's copy of the word (see SparseMatrix.MaskBit for the stored bit order that makes c_i a lane constant).
    static readonly Vector512<uint> TestF32Lo = Vector512.Create(1u, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768);
    static readonly Vector512<uint> TestF32Hi = TestF32Lo << 16;
    static readonly Vector512<ushort> TestF16 = Vector512.Create(
        (ushort)1, 1, 2, 2, 4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256, 256, 512, 512, 1024, 1024, 2048, 2048,
        4096, 4096, 8192, 8192, 16384, 16384, 32768, 32768);
    static readonly Vector512<byte> TestQ8 = Vector512.Create(
        Vector256.Create(Vector128.Create((byte)1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2), Vector128.Create((byte)4, 4, 4, 4, 4, 4, 4, 4, 8, 8, 8, 8, 8, 8, 8, 8)),
        Vector256.Create(Vector128.Create((byte)16, 16, 16, 16, 16, 16, 16, 16, 32, 32, 32, 32, 32, 32, 32, 32), Vector128.Create((byte)64, 64, 64, 64, 64, 64, 64, 64, 128, 128, 128, 128, 128, 128, 128, 128)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<uint> Test(Vector512<uint> word, Vector512<uint> bits) => Vector512.Equals(word & bits, bits);

    /// <summary>The 32 halves of one F16 block, expanded into place (zeros where the mask is clear).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<ushort> ExpandHalves(byte* v, uint* mask)
    {
        var k = Vector512.Equals(Vector512.Create(*mask).AsUInt16() & TestF16, TestF16);
        // A plain load of the next 64 bytes (the blob's tail padding keeps it inside) and the register form of the
        // expansion: the expand-load from memory is microcoded on some cores.
        return Avx512Vbmi2.Expand(merge: Vector512<ushort>.Zero, mask: k, value: Vector512.Load((ushort*)v));
    }

    /// <summary>The 64 int8 quants of two Q8_0 blocks, expanded into place.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<byte> ExpandQuants(byte* v, ulong* mask)
    {
        var k = Vector512.Equals(Vector512.Create(*mask).AsByte() & TestQ8, TestQ8);
        return Avx512Vbmi2.Expand(merge: Vector512<byte>.Zero, mask: k, value: Vector512.Load(v));
    }

    /// <summary>
    /// F16 halves to floats 2^-112 times their value, two per 32-bit lane and no cross-lane work: the even halves
    /// (low) and the odd halves (high) of each lane, so the activations are split into even and odd columns per block.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static (Vector512<float> Even, Vector512<float> Odd) PairsUnscaled(Vector512<ushort> h)
    {
        var d = h.AsInt32();
        var even = (Vector512.ShiftRightArithmetic(d << 16, 3) & Vector512.Create(unchecked((int)0x8FFFFFFF))).AsSingle();
        var odd = (Vector512.ShiftRightArithmetic(d, 3) & Vector512.Create(unchecked((int)0x8FFFE000))).AsSingle();
        return (even, odd);
    }

    /// <summary>
    /// F16 decode activations: per block, the 16 even columns then the 16 odd columns of x * 2^s; [cols] = 2^(112-s)
    /// (the dense F16 kernel's exact power-of-two prescale, see <see cref="F16Kernel"/>).
    /// </summary>
    static void PrepareF16(float* x, int cols, float* prep) => F16Kernel.Prepare(x, cols, prep);

    /// <summary>
    /// Row r of a compact Q8_0 blob back in dense Q8_0 blocks (f16 scale, 32 int8 quants) at <paramref name="dst"/>:
    /// the integer prefill GEMM (<see cref="Int8Gemm.MatMulRowsCompactQ8"/>) runs on them.
    /// </summary>
    internal static void DecodeQ8Blocks(byte* blob, int r, int cols, byte* dst)
    {
        byte* s = blob + ((long*)(blob + SparseMatrix.HeaderBytes))[r];
        int nb = cols / 32;
        byte* v = s + SparseMatrix.RowHeaderBytes(GgmlType.Q8_0, nb);
        ushort* scales = (ushort*)(s + SparseMatrix.MaskBytes(GgmlType.Q8_0, nb));
        for (int b = 0; b < nb; b += 2)
        {
            ulong mask = ((ulong*)s)[b / 2];
            var q = ExpandQuants(v, (ulong*)s + b / 2);
            v += BitOperations.PopCount(mask);
            *(ushort*)dst = scales[b];
            q.GetLower().Store(dst + 2);
            dst += 34;
            if (b + 1 < nb)
            {
                *(ushort*)dst = scales[b + 1];
                q.GetUpper().Store(dst + 2);
                dst += 34;
            }
        }
    }

    /// <summary>Writes row <paramref name="s"/> expanded to F32 (exact values), for the prefill tiles.</summary>
    static void ExpandRow(byte* s, GgmlType type, int cols, float* dst)
    {
        int nb = cols / 32;
        byte* v = s + SparseMatrix.RowHeaderBytes(type, nb);
        switch (type)
        {
            case GgmlType.F16:
                for (int b = 0; b < nb; b++, dst += 32)
                {
                    var h = ExpandHalves(v, (uint*)s + b);
                    v += BitOperations.PopCount(((uint*)s)[b]) * 2;
                    var scale = Vector512.Create(Fp16.Pow2_112);
                    (((Avx512F.ConvertToVector512Int32(h.GetLower().AsInt16()) << 13) & Vector512.Create(unchecked((int)0x8FFFFFFF))).AsSingle() * scale).Store(dst);
                    (((Avx512F.ConvertToVector512Int32(h.GetUpper().AsInt16()) << 13) & Vector512.Create(unchecked((int)0x8FFFFFFF))).AsSingle() * scale).Store(dst + 16);
                }
                break;
            case GgmlType.Q8_0:
                ushort* scales = (ushort*)(s + SparseMatrix.MaskBytes(type, nb));
                for (int b = 0; b < nb; b += 2)
                {
                    var q = ExpandQuants(v, (ulong*)s + b / 2).AsSByte();
                    v += BitOperations.PopCount(((ulong*)s)[b / 2]);
                    for (int h = 0; h < 2 && b + h < nb; h++, dst += 32)
                    {
                        var qh = h == 0 ? q.GetLower() : q.GetUpper();
                        var d = Vector512.Create(Fp16.ToFloatFast(scales[b + h]));
                        (Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(qh.GetLower())) * d).Store(dst);
                        (Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(qh.GetUpper())) * d).Store(dst + 16);
                    }
                }
                break;
            default:
                for (int b = 0; b < nb; b++, dst += 32)
                {
                    var w = Vector512.Create(((uint*)s)[b]);
                    Avx512F.Expand(merge: Vector512<float>.Zero, mask: Test(w, TestF32Lo).AsSingle(), value: Vector512.Load((float*)v)).Store(dst);
                    v += BitOperations.PopCount(((uint*)s)[b] & 0xFFFF) * 4;
                    Avx512F.Expand(merge: Vector512<float>.Zero, mask: Test(w, TestF32Hi).AsSingle(), value: Vector512.Load((float*)v)).Store(dst + 16);
                    v += BitOperations.PopCount(((uint*)s)[b] >> 16) * 4;
                }
                break;
        }
    }

    /// <summary>
    /// F16 decode: two rows in flight, each with even- and odd-column accumulators (four FMA chains); per block and row
    /// one broadcast-and-compare predicate, one vpexpandw, the pairwise conversion (<see cref="PairsUnscaled"/>) and two
    /// FMAs with the even/odd-split prescaled x. Two rows, not four, and everything in locals: with four rows the JIT
    /// spilled the accumulators and pointers to the stack every block, which made the kernel 3x slower than its
    /// instruction count (L2-resident matrix: 21 cycles per row and block).
    /// </summary>
    static void VecChunkF16(void* ctx, int chunk)
    {
        ref readonly Job j = ref *(Job*)ctx;
        int r0 = chunk * RowsPerChunk, r1 = Math.Min(r0 + RowsPerChunk, j.Rows);
        int nb = j.Blocks, hb = SparseMatrix.RowHeaderBytes(GgmlType.F16, nb);
        float* x = j.Prep;
        float fin = x[j.Cols];
        float* sums = stackalloc float[2];
        for (int r = r0; r < r1; r += 2)
        {
            int rb = Math.Min(r + 1, r1 - 1);
            byte* p0 = j.RowPtr(r), p1 = j.RowPtr(rb);
            byte* next = PrefetchWindow(j, r, rb, r1, out long ahead);
            DotF16x2((uint*)p0, (uint*)p1, p0 + hb, p1 + hb, nb, x, sums, next, ahead);
            j.Y[r] = sums[0] * fin;
            if (rb != r) j.Y[rb] = sums[1] * fin;
        }
    }


    /// <summary>Two rows' dot products with the even/odd-split prescaled x (unscaled: the caller multiplies by x[cols]).</summary>
    static void DotF16x2(uint* k0, uint* k1, byte* v0, byte* v1, int nb, float* x, float* sums, byte* next, long ahead)
    {
        // Lines of the next rows to prefetch per block, so that they are all requested by the end of these rows.
        int perBlock = (int)((ahead + 64L * nb - 1) / (64L * nb));
        // The predicate is built inline with the test vector in a local: through ExpandHalves (a static readonly test
        // vector) this loop ran 1.6x slower.
        var test = TestF16;
        var evenMask = Vector512.Create(unchecked((int)0x8FFFFFFF));
        var oddMask = Vector512.Create(unchecked((int)0x8FFFE000));
        var evenShift = Vector512.Create(1 << 13).AsInt16(); // per 32-bit lane: [2^13, 0]
        Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default;
        for (int b = 0; b < nb; b++)
        {
            var xe = Vector512.Load(x + b * 32);
            var xo = Vector512.Load(x + b * 32 + 16);
            // The mask word is broadcast straight from memory into the AND (no shuffle-port broadcast), and counted from a
            // separate scalar load (volatile, so the JIT does not merge the two loads and broadcast from a register).
            var p0 = Vector512.Equals(Vector512.Create(k0[b]).AsUInt16() & test, test);
            var p1 = Vector512.Equals(Vector512.Create(k1[b]).AsUInt16() & test, test);
            var h0 = Avx512Vbmi2.Expand(Vector512<ushort>.Zero, p0, Vector512.Load((ushort*)v0)).AsInt32();
            var h1 = Avx512Vbmi2.Expand(Vector512<ushort>.Zero, p1, Vector512.Load((ushort*)v1)).AsInt32();
            v0 += BitOperations.PopCount(Volatile.Read(ref k0[b])) * 2;
            v1 += BitOperations.PopCount(Volatile.Read(ref k1[b])) * 2;
            for (int l = 0; l < perBlock; l++, next += 64) Sse.Prefetch1(next);
            // Even halves: vpmaddwd by [2^13, 0] is the sign-extended half shifted left by 13 (as the two shifts
            // (h << 16) >> 3, bit for bit) on the multiply pipes, which leaves the shift/shuffle pipes to vpexpandw.
            a0 = Vector512.FusedMultiplyAdd((Avx512BW.MultiplyAddAdjacent(h0.AsInt16(), evenShift) & evenMask).AsSingle(), xe, a0);
            b0 = Vector512.FusedMultiplyAdd((Vector512.ShiftRightArithmetic(h0, 3) & oddMask).AsSingle(), xo, b0);
            a1 = Vector512.FusedMultiplyAdd((Avx512BW.MultiplyAddAdjacent(h1.AsInt16(), evenShift) & evenMask).AsSingle(), xe, a1);
            b1 = Vector512.FusedMultiplyAdd((Vector512.ShiftRightArithmetic(h1, 3) & oddMask).AsSingle(), xo, b1);
        }
        sums[0] = Vector512.Sum(a0 + b0);
        sums[1] = Vector512.Sum(a1 + b1);
    }

    /// <summary>
    /// Q8_0 decode with int8 activations (<see cref="Q8Act"/>, as the dense Q8_0 kernel): per pair of blocks and row
    /// one predicate and one 64-byte vpexpandb, then both blocks' integer dots in one 512-bit step (<see cref="Q8Rows.Dot4"/>)
    /// with the same per-lane integer sums, scales and order of float operations as the dense kernel, so the results
    /// equal the dense kernel's on the dense matrix.
    /// </summary>
    static void VecChunkQ8(void* ctx, int chunk)
    {
        ref readonly Job j = ref *(Job*)ctx;
        int r0 = chunk * RowsPerChunk, r1 = Math.Min(r0 + RowsPerChunk, j.Rows);
        int nb = j.Blocks, ng = Q8Act.Groups(j.Cols);
        int sb = (nb + 31) & ~15; // scale buffer floats per row (four rows): whole 16-float loads past the last pair stay inside
        float* scales = stackalloc float[4 * sb + 16];
        var q = new Q8Rows
        {
            Blocks = nb, MaskBytes = SparseMatrix.MaskBytes(GgmlType.Q8_0, nb), HeaderBytes = SparseMatrix.RowHeaderBytes(GgmlType.Q8_0, nb),
            Xq = (sbyte*)j.Prep, Dx = j.Prep + ng * 128,
        };
        float* y = stackalloc float[4];
        for (int r = r0; r < r1; r += 4)
        {
            int m = Math.Min(4, r1 - r);
            int ra = r + Math.Min(1, m - 1), rb = r + Math.Min(2, m - 1), rc = r + m - 1;
            // The next four rows (they follow in the blob), when still in this chunk.
            byte* next = null;
            long ahead = 0;
            if (rc + 4 < r1) { next = j.RowPtr(rc + 1); ahead = j.RowPtr(rc + 5) - next; }
            q.Dot4(j.RowPtr(r), j.RowPtr(ra), j.RowPtr(rb), j.RowPtr(rc), scales, sb, y, next, ahead);
            for (int k = 0; k < m; k++) j.Y[r + k] = y[k];
        }
    }

    /// <summary>What the four-row Q8_0 decode step needs besides the rows (unmanaged, on the caller's stack).</summary>
    struct Q8Rows
    {
        public int Blocks, MaskBytes, HeaderBytes;
        public sbyte* Xq;
        public float* Dx;

        /// <summary>
        /// s[b] = the row's block scale times x's (<see cref="Q8Act.Scale"/> * dx[b], the dense kernel's float product),
        /// sixteen blocks per step; zero from block <see cref="Blocks"/> on, so the odd block of a last half pair adds 0.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        readonly void RowScales(byte* row, float* s)
        {
            short* sc = (short*)(row + MaskBytes);
            var mask = Vector512.Create(unchecked((int)0x8FFFFFFF));
            var pow = Vector512.Create(Fp16.Pow2_112);
            int b = 0;
            for (; b + 16 <= Blocks; b += 16)
            {
                var bits = (Avx512F.ConvertToVector512Int32(Vector256.Load(sc + b)) << 13) & mask;
                (bits.AsSingle() * pow * Vector512.Load(Dx + b)).Store(s + b);
            }
            for (; b < Blocks; b++) s[b] = Q8Act.Scale((byte*)(sc + b)) * Dx[b];
            Vector512<float>.Zero.Store(s + Blocks);
        }

        /// <summary>
        /// y = the dense Q8_0 kernel's result for four rows, bit for bit. Per pair of blocks and row: the expanded 64
        /// quants (block b in bytes 0-31, b + 1 in 32-63) times x as |x| times w with x's sign (the dense kernel's
        /// <see cref="Q8Act.DotSigned"/> has the roles swapped; the products are the same), vpmaddubsw + vpmaddwd into
        /// sixteen int32 lanes (lanes 0-7: block b's, 8-15: block b + 1's, each the same four products as the dense
        /// kernel's lane), converted and multiplied by [s[b] x 8, s[b + 1] x 8] into one accumulator whose halves are
        /// the dense kernel's even- and odd-block accumulators. Four rows share x's |x| and sign and the loop (two rows:
        /// 0.86x of the dense kernel in L2, four: 0.91x, KernelBench sparse at load 15).
        /// </summary>
        public readonly void Dot4(byte* row0, byte* row1, byte* row2, byte* row3, float* s, int sb, float* y, byte* next, long ahead)
        {
            int perPair = (int)((ahead + 32L * Blocks - 1) / (32L * Blocks));
            RowScales(row0, s); RowScales(row1, s + sb); RowScales(row2, s + 2 * sb); RowScales(row3, s + 3 * sb);
            byte* v0 = row0 + HeaderBytes, v1 = row1 + HeaderBytes, v2 = row2 + HeaderBytes, v3 = row3 + HeaderBytes;
            ulong* k0 = (ulong*)row0, k1 = (ulong*)row1, k2 = (ulong*)row2, k3 = (ulong*)row3;
            var test = TestQ8;
            var ones = Vector512.Create((short)1);
            var pairIndex = Vector512.Create(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int b = 0; b < Blocks; b += 2)
            {
                var u0 = Avx512Vbmi2.Expand(Vector512<byte>.Zero, Vector512.Equals(Vector512.Create(k0[b / 2]).AsByte() & test, test), Vector512.Load(v0)).AsSByte();
                var u1 = Avx512Vbmi2.Expand(Vector512<byte>.Zero, Vector512.Equals(Vector512.Create(k1[b / 2]).AsByte() & test, test), Vector512.Load(v1)).AsSByte();
                var u2 = Avx512Vbmi2.Expand(Vector512<byte>.Zero, Vector512.Equals(Vector512.Create(k2[b / 2]).AsByte() & test, test), Vector512.Load(v2)).AsSByte();
                var u3 = Avx512Vbmi2.Expand(Vector512<byte>.Zero, Vector512.Equals(Vector512.Create(k3[b / 2]).AsByte() & test, test), Vector512.Load(v3)).AsSByte();
                v0 += BitOperations.PopCount(Volatile.Read(ref k0[b / 2]));
                v1 += BitOperations.PopCount(Volatile.Read(ref k1[b / 2]));
                v2 += BitOperations.PopCount(Volatile.Read(ref k2[b / 2]));
                v3 += BitOperations.PopCount(Volatile.Read(ref k3[b / 2]));
                for (int l = 0; l < perPair; l++, next += 64) Sse.Prefetch1(next);
                // |x| times w with x's sign: one masked vpsubb per row (w = -128 would not negate, which is why compact
                // Q8_0 blobs hold no -128 quant: SparseMatrix.Encode and Open refuse it).
                var xv = Vector512.Load(Xq + b * 32);
                var ax = Avx512BW.Abs(xv);
                var xneg = Vector512.LessThan(xv, Vector512<sbyte>.Zero);
                a0 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(ax, Vector512.ConditionalSelect(xneg, Vector512<sbyte>.Zero - u0, u0)), ones)),
                    Avx512F.PermuteVar16x32(Vector512.Load(s + b), pairIndex), a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(ax, Vector512.ConditionalSelect(xneg, Vector512<sbyte>.Zero - u1, u1)), ones)),
                    Avx512F.PermuteVar16x32(Vector512.Load(s + sb + b), pairIndex), a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(ax, Vector512.ConditionalSelect(xneg, Vector512<sbyte>.Zero - u2, u2)), ones)),
                    Avx512F.PermuteVar16x32(Vector512.Load(s + 2 * sb + b), pairIndex), a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(ax, Vector512.ConditionalSelect(xneg, Vector512<sbyte>.Zero - u3, u3)), ones)),
                    Avx512F.PermuteVar16x32(Vector512.Load(s + 3 * sb + b), pairIndex), a3);
            }
            y[0] = Vector256.Sum(a0.GetLower() + a0.GetUpper());
            y[1] = Vector256.Sum(a1.GetLower() + a1.GetUpper());
            y[2] = Vector256.Sum(a2.GetLower() + a2.GetUpper());
            y[3] = Vector256.Sum(a3.GetLower() + a3.GetUpper());
        }

    }

    /// <summary>Decode from F32 values: four rows at a time, two accumulators each (eight independent FMA chains).</summary>
    static void VecChunkF32(void* ctx, int chunk)
    {
        ref readonly Job j = ref *(Job*)ctx;
        int r0 = chunk * RowsPerChunk, r1 = Math.Min(r0 + RowsPerChunk, j.Rows);
        int nb = j.Blocks;
        float* x = j.X;
        int r = r0;
        for (; r + 4 <= r1; r += 4)
        {
            uint* k0 = (uint*)j.RowPtr(r), k1 = (uint*)j.RowPtr(r + 1), k2 = (uint*)j.RowPtr(r + 2), k3 = (uint*)j.RowPtr(r + 3);
            float* v0 = (float*)(k0 + nb), v1 = (float*)(k1 + nb), v2 = (float*)(k2 + nb), v3 = (float*)(k3 + nb);
            Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
            for (int b = 0; b < nb; b++)
            {
                var lo = Vector512.Load(x + b * 32);
                var hi = Vector512.Load(x + b * 32 + 16);
                StepF32(k0[b], ref v0, lo, hi, ref a0, ref b0);
                StepF32(k1[b], ref v1, lo, hi, ref a1, ref b1);
                StepF32(k2[b], ref v2, lo, hi, ref a2, ref b2);
                StepF32(k3[b], ref v3, lo, hi, ref a3, ref b3);
            }
            j.Y[r] = Vector512.Sum(a0 + b0);
            j.Y[r + 1] = Vector512.Sum(a1 + b1);
            j.Y[r + 2] = Vector512.Sum(a2 + b2);
            j.Y[r + 3] = Vector512.Sum(a3 + b3);
        }
        for (; r < r1; r++)
        {
            uint* k = (uint*)j.RowPtr(r);
            float* v = (float*)(k + nb);
            Vector512<float> a = default, c = default;
            for (int b = 0; b < nb; b++) StepF32(k[b], ref v, Vector512.Load(x + b * 32), Vector512.Load(x + b * 32 + 16), ref a, ref c);
            j.Y[r] = Vector512.Sum(a + c);
        }
    }

    /// <summary>One row's 32 columns: expand the packed values of each half into place and accumulate.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StepF32(uint mask, ref float* v, Vector512<float> xLo, Vector512<float> xHi, ref Vector512<float> lo, ref Vector512<float> hi)
    {
        var w = Vector512.Create(mask);
        lo = Vector512.FusedMultiplyAdd(Avx512F.Expand(merge: Vector512<float>.Zero, mask: Test(w, TestF32Lo).AsSingle(), value: Vector512.Load(v)), xLo, lo);
        v += BitOperations.PopCount(mask & 0xFFFF);
        hi = Vector512.FusedMultiplyAdd(Avx512F.Expand(merge: Vector512<float>.Zero, mask: Test(w, TestF32Hi).AsSingle(), value: Vector512.Load(v)), xHi, hi);
        v += BitOperations.PopCount(mask >> 16);
    }

    /// <summary>Prefill: expand four rows into a buffer, then a 4-row x 4-token tile of dot products.</summary>
    static void RowsChunk(void* ctx, int chunk)
    {
        ref readonly Job j = ref *(Job*)ctx;
        ref readonly Job m = ref j;
        int r0 = chunk * RowsPerChunk, r1 = Math.Min(r0 + RowsPerChunk, m.Rows);
        int cols = m.Cols, nb = m.Blocks;
        float* buf = ThreadBuffers.Rows(4 * cols);
        float* res = stackalloc float[16];
        for (int r = r0; r < r1; r += 4)
        {
            int nr = Math.Min(4, r1 - r);
            for (int a = 0; a < nr; a++)
            {
                ExpandRow(m.RowPtr(r + a), m.ValueType, cols, buf + a * cols);
            }
            float* w0 = buf, w1 = buf + Math.Min(1, nr - 1) * cols, w2 = buf + Math.Min(2, nr - 1) * cols, w3 = buf + Math.Min(3, nr - 1) * cols;
            for (int t = 0; t < j.N; t += 4)
            {
                int nt = Math.Min(4, j.N - t);
                float* x0 = j.X + (long)t * cols;
                float* x1 = j.X + (long)(t + Math.Min(1, nt - 1)) * cols;
                float* x2 = j.X + (long)(t + Math.Min(2, nt - 1)) * cols;
                float* x3 = j.X + (long)(t + Math.Min(3, nt - 1)) * cols;
                Tile4x4(w0, w1, w2, w3, x0, x1, x2, x3, cols, res);
                for (int b = 0; b < nt; b++)
                    for (int a = 0; a < nr; a++)
                        j.Y[(long)(t + b) * m.Rows + r + a] = res[4 * b + a];
            }
        }
    }

    /// <summary>res[4 b + a] = dot(w_a, x_b): 8 loads feed 16 FMAs per 16 columns (cols is a multiple of 32).</summary>
    static void Tile4x4(float* w0, float* w1, float* w2, float* w3, float* x0, float* x1, float* x2, float* x3, int cols, float* res)
    {
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default, c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default, c30 = default, c31 = default, c32 = default, c33 = default;
        for (int i = 0; i < cols; i += 16)
        {
            var a0 = Vector512.Load(w0 + i); var a1 = Vector512.Load(w1 + i); var a2 = Vector512.Load(w2 + i); var a3 = Vector512.Load(w3 + i);
            var b = Vector512.Load(x0 + i);
            c00 = Vector512.FusedMultiplyAdd(a0, b, c00); c01 = Vector512.FusedMultiplyAdd(a1, b, c01); c02 = Vector512.FusedMultiplyAdd(a2, b, c02); c03 = Vector512.FusedMultiplyAdd(a3, b, c03);
            b = Vector512.Load(x1 + i);
            c10 = Vector512.FusedMultiplyAdd(a0, b, c10); c11 = Vector512.FusedMultiplyAdd(a1, b, c11); c12 = Vector512.FusedMultiplyAdd(a2, b, c12); c13 = Vector512.FusedMultiplyAdd(a3, b, c13);
            b = Vector512.Load(x2 + i);
            c20 = Vector512.FusedMultiplyAdd(a0, b, c20); c21 = Vector512.FusedMultiplyAdd(a1, b, c21); c22 = Vector512.FusedMultiplyAdd(a2, b, c22); c23 = Vector512.FusedMultiplyAdd(a3, b, c23);
            b = Vector512.Load(x3 + i);
            c30 = Vector512.FusedMultiplyAdd(a0, b, c30); c31 = Vector512.FusedMultiplyAdd(a1, b, c31); c32 = Vector512.FusedMultiplyAdd(a2, b, c32); c33 = Vector512.FusedMultiplyAdd(a3, b, c33);
        }
        res[0] = Vector512.Sum(c00); res[1] = Vector512.Sum(c01); res[2] = Vector512.Sum(c02); res[3] = Vector512.Sum(c03);
        res[4] = Vector512.Sum(c10); res[5] = Vector512.Sum(c11); res[6] = Vector512.Sum(c12); res[7] = Vector512.Sum(c13);
        res[8] = Vector512.Sum(c20); res[9] = Vector512.Sum(c21); res[10] = Vector512.Sum(c22); res[11] = Vector512.Sum(c23);
        res[12] = Vector512.Sum(c30); res[13] = Vector512.Sum(c31); res[14] = Vector512.Sum(c32); res[15] = Vector512.Sum(c33);
    }
}
