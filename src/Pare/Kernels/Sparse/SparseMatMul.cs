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
    const int RowsPerChunk = 16;

    /// <summary>
    /// Expansion strategy: false (default) = a plain load of the next 64 bytes of packed values (the blob's 64-byte tail
    /// padding keeps it inside the blob) and the register form of the expansion; true = expand-load from memory
    /// (<c>vpexpandw zmm{k}, m512</c>, microcoded on some cores). Compared by the micro-benchmark in
    /// tests/Pare.Tests/Pruning/SparseSpeedBenchmark.cs.
    /// </summary>
    internal static bool ExpandFromMemory { get; set; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<ushort> ExpandHalves(byte* v, uint mask) => ExpandFromMemory
        ? Avx512Vbmi2.ExpandLoad((ushort*)v, MaskW(mask), Vector512<ushort>.Zero)
        : Avx512Vbmi2.Expand(merge: Vector512<ushort>.Zero, mask: MaskW(mask), value: Vector512.Load((ushort*)v));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<sbyte> ExpandQuants(byte* v, uint mask) => ExpandFromMemory
        ? Avx512Vbmi2.VL.ExpandLoad((sbyte*)v, MaskB(mask), Vector256<sbyte>.Zero)
        : Avx512Vbmi2.VL.Expand(merge: Vector256<sbyte>.Zero, mask: MaskB(mask), value: Vector256.Load((sbyte*)v));

    internal static bool Fast => Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Avx512BW.IsSupported && Avx512Vbmi2.IsSupported && Avx512Vbmi2.VL.IsSupported;

    /// <summary>Y[t, r] = sum_c W[r, c] X[t, c] for t &lt; n.</summary>
    public static void MatMulRows(SparseMatrix w, ReadOnlySpan<float> x, int n, Span<float> y, int threads, bool portable = false)
    {
        if (x.Length < (long)n * w.Cols) throw new ArgumentException($"x has {x.Length} values, needs {n} x {w.Cols}", nameof(x));
        if (y.Length < (long)n * w.Rows) throw new ArgumentException($"y has {y.Length} values, needs {n} x {w.Rows}", nameof(y));
        if (n == 0) return;
        threads = Math.Max(1, threads);
        fixed (float* px = x, py = y)
        {
            var job = new Job { Blob = (byte*)w.Data, ValueType = w.ValueType, Rows = w.Rows, Cols = w.Cols, X = px, Y = py, N = n };
            int chunks = (w.Rows + RowsPerChunk - 1) / RowsPerChunk;
            if (portable || !Fast) { KernelThreadPool.Shared.Run(&ReferenceChunk, &job, chunks, threads); return; }
            if (n == 1)
            {
                float* prep = null;
                if (w.ValueType == GgmlType.F16)
                {
                    prep = ThreadBuffers.Prep(F16Kernel.PrepFloats(w.Cols));
                    F16Kernel.Prepare(px, w.Cols, prep);
                }
                job.Prep = prep;
                switch (w.ValueType)
                {
                    case GgmlType.F16: KernelThreadPool.Shared.Run(&VecChunk<F16Values>, &job, chunks, threads); break;
                    case GgmlType.Q8_0: KernelThreadPool.Shared.Run(&VecChunk<Q8Values>, &job, chunks, threads); break;
                    default: KernelThreadPool.Shared.Run(&VecChunk<F32Values>, &job, chunks, threads); break;
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

    /// <summary>Per value type: the expansion of one 32-column block and where a row's values start.</summary>
    interface IValues
    {
        /// <summary>Bytes before the packed values: masks (and Q8_0 scales).</summary>
        static abstract int Header(int nb);
        /// <summary>acc += expand(block b) . x[32 b ..]; advances v past the block's values.</summary>
        static abstract Vector512<float> Block(uint mask, ref byte* v, byte* rowStart, int b, int nb, Vector512<float> x0, Vector512<float> x1, Vector512<float> acc);
        /// <summary>Writes the 32 expanded values of block b (exact floats).</summary>
        static abstract void Expand(uint mask, ref byte* v, byte* rowStart, int b, int nb, float* dst);
        /// <summary>Factor applied to each finished dot product (F16's prescale).</summary>
        static abstract float Finish(float* prep, int cols);
    }

    static readonly Vector512<ushort> Bits16x2 = Vector512.Create(
        (ushort)1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768,
        1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768);
    static readonly Vector256<byte> ByteBits = Vector256.Create(
        (byte)1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
    static readonly Vector256<byte> ByteSel = Vector256.Create(
        (byte)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    static readonly Vector512<uint> Bits32 = Vector512.Create(1u, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<ushort> MaskW(uint m)
    {
        var v = Vector512.Create(Vector256.Create((ushort)m), Vector256.Create((ushort)(m >> 16)));
        return Vector512.Equals(v & Bits16x2, Bits16x2);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<sbyte> MaskB(uint m)
    {
        // Byte i of the result tests bit i of m: spread byte i/8 of m to lane i (vpshufb works within 128-bit halves,
        // and the broadcast puts all four bytes of m in both halves), then test bit i%8.
        var spread = Avx2.Shuffle(Vector256.Create(m).AsByte(), ByteSel);
        return Vector256.Equals(spread & ByteBits, ByteBits).AsSByte();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> MaskF(uint m16) => Vector512.Equals(Vector512.Create(m16) & Bits32, Bits32).AsSingle();

    readonly struct F16Values : IValues
    {
        public static int Header(int nb) => nb * 4;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Block(uint mask, ref byte* v, byte* rowStart, int b, int nb, Vector512<float> x0, Vector512<float> x1, Vector512<float> acc)
        {
            var h = ExpandHalves(v, mask);
            v += BitOperations.PopCount(mask) * 2;
            var lo = ((Avx512F.ConvertToVector512Int32(h.GetLower().AsInt16()) << 13) & Vector512.Create(unchecked((int)0x8FFFFFFF))).AsSingle();
            var hi = ((Avx512F.ConvertToVector512Int32(h.GetUpper().AsInt16()) << 13) & Vector512.Create(unchecked((int)0x8FFFFFFF))).AsSingle();
            acc = Vector512.FusedMultiplyAdd(lo, x0, acc);
            return Vector512.FusedMultiplyAdd(hi, x1, acc);
        }

        public static void Expand(uint mask, ref byte* v, byte* rowStart, int b, int nb, float* dst)
        {
            var h = ExpandHalves(v, mask);
            v += BitOperations.PopCount(mask) * 2;
            var scale = Vector512.Create(Fp16.Pow2_112);
            (((Avx512F.ConvertToVector512Int32(h.GetLower().AsInt16()) << 13) & Vector512.Create(unchecked((int)0x8FFFFFFF))).AsSingle() * scale).Store(dst);
            (((Avx512F.ConvertToVector512Int32(h.GetUpper().AsInt16()) << 13) & Vector512.Create(unchecked((int)0x8FFFFFFF))).AsSingle() * scale).Store(dst + 16);
        }

        public static float Finish(float* prep, int cols) => prep[cols];
    }

    readonly struct Q8Values : IValues
    {
        public static int Header(int nb) => nb * 6;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Block(uint mask, ref byte* v, byte* rowStart, int b, int nb, Vector512<float> x0, Vector512<float> x1, Vector512<float> acc)
        {
            var q = ExpandQuants(v, mask);
            v += BitOperations.PopCount(mask);
            var lo = Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(q.GetLower()));
            var hi = Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(q.GetUpper()));
            var t = Vector512.FusedMultiplyAdd(hi, x1, lo * x0);
            float d = Fp16.ToFloatFast(((ushort*)(rowStart + nb * 4))[b]);
            return Vector512.FusedMultiplyAdd(t, Vector512.Create(d), acc);
        }

        public static void Expand(uint mask, ref byte* v, byte* rowStart, int b, int nb, float* dst)
        {
            var q = ExpandQuants(v, mask);
            v += BitOperations.PopCount(mask);
            var d = Vector512.Create(Fp16.ToFloatFast(((ushort*)(rowStart + nb * 4))[b]));
            (Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(q.GetLower())) * d).Store(dst);
            (Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(q.GetUpper())) * d).Store(dst + 16);
        }

        public static float Finish(float* prep, int cols) => 1f;
    }

    readonly struct F32Values : IValues
    {
        public static int Header(int nb) => nb * 4;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Block(uint mask, ref byte* v, byte* rowStart, int b, int nb, Vector512<float> x0, Vector512<float> x1, Vector512<float> acc)
        {
            uint lo = mask & 0xFFFF, hi = mask >> 16;
            var a = Avx512F.Expand(merge: Vector512<float>.Zero, mask: MaskF(lo), value: Vector512.Load((float*)v));
            v += BitOperations.PopCount(lo) * 4;
            var c = Avx512F.Expand(merge: Vector512<float>.Zero, mask: MaskF(hi), value: Vector512.Load((float*)v));
            v += BitOperations.PopCount(hi) * 4;
            acc = Vector512.FusedMultiplyAdd(a, x0, acc);
            return Vector512.FusedMultiplyAdd(c, x1, acc);
        }

        public static void Expand(uint mask, ref byte* v, byte* rowStart, int b, int nb, float* dst)
        {
            uint lo = mask & 0xFFFF, hi = mask >> 16;
            Avx512F.ExpandLoad((float*)v, MaskF(lo), Vector512<float>.Zero).Store(dst);
            v += BitOperations.PopCount(lo) * 4;
            Avx512F.ExpandLoad((float*)v, MaskF(hi), Vector512<float>.Zero).Store(dst + 16);
            v += BitOperations.PopCount(hi) * 4;
        }

        public static float Finish(float* prep, int cols) => 1f;
    }

    /// <summary>Decode: four rows in flight per step, each with its own mask and value cursors.</summary>
    static void VecChunk<TV>(void* ctx, int chunk) where TV : IValues
    {
        ref readonly Job j = ref *(Job*)ctx;
        ref readonly Job m = ref j;
        int r0 = chunk * RowsPerChunk, r1 = Math.Min(r0 + RowsPerChunk, m.Rows);
        int nb = m.Blocks, cols = m.Cols;
        float* x = typeof(TV) == typeof(F16Values) ? j.Prep : j.X;
        float fin = TV.Finish(j.Prep, cols);
        int r = r0;
        for (; r + 4 <= r1; r += 4)
        {
            byte* s0 = m.RowPtr(r), s1 = m.RowPtr(r + 1), s2 = m.RowPtr(r + 2), s3 = m.RowPtr(r + 3);
            uint* k0 = (uint*)s0, k1 = (uint*)s1, k2 = (uint*)s2, k3 = (uint*)s3;
            byte* v0 = s0 + TV.Header(nb), v1 = s1 + TV.Header(nb), v2 = s2 + TV.Header(nb), v3 = s3 + TV.Header(nb);
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int b = 0; b < nb; b++)
            {
                var x0 = Vector512.Load(x + b * 32); var x1 = Vector512.Load(x + b * 32 + 16);
                a0 = TV.Block(k0[b], ref v0, s0, b, nb, x0, x1, a0);
                a1 = TV.Block(k1[b], ref v1, s1, b, nb, x0, x1, a1);
                a2 = TV.Block(k2[b], ref v2, s2, b, nb, x0, x1, a2);
                a3 = TV.Block(k3[b], ref v3, s3, b, nb, x0, x1, a3);
            }
            j.Y[r] = Vector512.Sum(a0) * fin; j.Y[r + 1] = Vector512.Sum(a1) * fin;
            j.Y[r + 2] = Vector512.Sum(a2) * fin; j.Y[r + 3] = Vector512.Sum(a3) * fin;
        }
        for (; r < r1; r++)
        {
            byte* s = m.RowPtr(r);
            uint* k = (uint*)s;
            byte* v = s + TV.Header(nb);
            Vector512<float> a = default;
            for (int b = 0; b < nb; b++) a = TV.Block(k[b], ref v, s, b, nb, Vector512.Load(x + b * 32), Vector512.Load(x + b * 32 + 16), a);
            j.Y[r] = Vector512.Sum(a) * fin;
        }
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
                byte* s = m.RowPtr(r + a);
                uint* k = (uint*)s;
                float* dst = buf + a * cols;
                switch (m.ValueType)
                {
                    case GgmlType.F16: { byte* v = s + F16Values.Header(nb); for (int b = 0; b < nb; b++) F16Values.Expand(k[b], ref v, s, b, nb, dst + b * 32); break; }
                    case GgmlType.Q8_0: { byte* v = s + Q8Values.Header(nb); for (int b = 0; b < nb; b++) Q8Values.Expand(k[b], ref v, s, b, nb, dst + b * 32); break; }
                    default: { byte* v = s + F32Values.Header(nb); for (int b = 0; b < nb; b++) F32Values.Expand(k[b], ref v, s, b, nb, dst + b * 32); break; }
                }
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
