using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Pare.Kernels;

/// <summary>
/// Bidirectional multi-head attention of a packed batch (an encoder's self-attention): sentence s owns rows
/// offsets[s] .. offsets[s+1] of the (N, 3D) q|k|v matrix and attends over its own rows only; ctx (N, D) gets
/// softmax(q kᵀ / √hd + logSize) v per head, heads side by side. Head size 32 (MiniLM, Arctic-xs) on AVX-512.
/// </summary>
/// <remarks>
/// One pool chunk per (sentence, head). K of the head is copied transposed and scaled (hd, len), V as (len, 32); queries
/// go eight at a time: scores with eight accumulator chains per 16 keys, a vectorized softmax per row, then the eight
/// context rows in sixteen accumulators (two vectors per query) over the keys. The plain version is
/// <c>BertEncoder.Attention</c>'s per-head loop, which the tests compare with.
/// </remarks>
public static unsafe class EncoderAttention
{
    public const int HeadDim = 32;
    const int QueryBlock = 8;

    /// <summary>Whether this kernel covers a head size here.</summary>
    public static bool Supports(int headDim) => headDim == HeadDim && MatMul.Avx512;

    /// <summary>Values <see cref="Run"/> writes to its probabilities: heads · Σ len² over the sentences.</summary>
    public static long ProbabilityCount(ReadOnlySpan<int> offsets, int heads)
    {
        long n = 0;
        for (int s = 0; s + 1 < offsets.Length; s++) n += (long)(offsets[s + 1] - offsets[s]) * (offsets[s + 1] - offsets[s]);
        return n * heads;
    }

    /// <summary>
    /// Runs the attention; <paramref name="logSize"/> (N values, or empty) is added to each key's scores. When
    /// <paramref name="probs"/> is not empty it receives every (sentence, head)'s probabilities, (len, len) row-major,
    /// sentence s head h at heads · Σ_{s' &lt; s} len_{s'}² + h · len_s² (<see cref="ProbabilityCount"/> values in all).
    /// </summary>
    public static void Run(ReadOnlySpan<float> qkv, ReadOnlySpan<int> offsets, int heads, ReadOnlySpan<float> logSize, Span<float> ctx, int threads, Span<float> probs = default)
    {
        int sentences = offsets.Length - 1, n = offsets[^1], d = heads * HeadDim;
        if (!Supports(HeadDim)) throw new PlatformNotSupportedException("EncoderAttention needs AVX-512");
        if (qkv.Length < (long)n * 3 * d || ctx.Length < (long)n * d || (logSize.Length != 0 && logSize.Length < n))
            throw new ArgumentException("attention buffers too short");
        if (sentences <= 0) return;
        if (probs.Length != 0 && probs.Length < ProbabilityCount(offsets, heads)) throw new ArgumentException("probability buffer too short");
        var probStart = probs.Length == 0 ? [] : new long[sentences];
        for (int s = 1; s < probStart.Length; s++) probStart[s] = probStart[s - 1] + (long)heads * (offsets[s] - offsets[s - 1]) * (offsets[s] - offsets[s - 1]);
        fixed (float* pq = qkv, pc = ctx, pl = logSize, pp = probs)
        fixed (int* po = offsets)
        fixed (long* ps = probStart)
        {
            var job = new Job { Qkv = pq, Ctx = pc, LogSize = logSize.Length == 0 ? null : pl, Offsets = po, Heads = heads, Dim = d,
                Probs = probs.Length == 0 ? null : pp, ProbStart = ps };
            KernelThreadPool.Shared.Run(&Chunk, &job, sentences * heads, threads);
        }
    }

    struct Job
    {
        public float* Qkv, Ctx, LogSize, Probs;
        public int* Offsets;
        public long* ProbStart;
        public int Heads, Dim;
    }

    [ThreadStatic] static float[]? t_buf;

    static float* Buffer(int values)
    {
        var a = t_buf;
        if (a == null || a.Length < values) t_buf = a = GC.AllocateUninitializedArray<float>(Math.Max(values, 16 * 1024), pinned: true);
        return (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(a));
    }

    static void Chunk(void* ctx, int chunk)
    {
        ref readonly Job j = ref *(Job*)ctx;
        int s = chunk / j.Heads, h = chunk % j.Heads;
        int start = j.Offsets[s], len = j.Offsets[s + 1] - start;
        if (len <= 0) return;
        int d = j.Dim, stride = 3 * d, lenPad = (len + 15) & ~15;
        float scale = 1f / MathF.Sqrt(HeadDim);
        // kt: (32, lenPad) scaled, padding keys score -inf through their bias; v: (len, 32); scores: (4, lenPad).
        float* kt = Buffer(HeadDim * lenPad + len * HeadDim + QueryBlock * lenPad + lenPad);
        float* v = kt + HeadDim * lenPad, scores = v + len * HeadDim, keyBias = scores + QueryBlock * lenPad;
        for (int t = 0; t < len; t++)
        {
            float* row = j.Qkv + (long)(start + t) * stride + h * HeadDim;
            for (int c = 0; c < HeadDim; c++) kt[c * lenPad + t] = row[d + c] * scale;
            Vector512.Load(row + 2 * d).Store(v + t * HeadDim);
            Vector512.Load(row + 2 * d + 16).Store(v + t * HeadDim + 16);
            keyBias[t] = j.LogSize == null ? 0f : j.LogSize[start + t];
        }
        for (int t = len; t < lenPad; t++)
        {
            for (int c = 0; c < HeadDim; c++) kt[c * lenPad + t] = 0f;
            keyBias[t] = float.NegativeInfinity;
        }
        for (int i0 = 0; i0 < len; i0 += QueryBlock)
        {
            int qn = Math.Min(QueryBlock, len - i0);
            float* q0 = j.Qkv + (long)(start + i0) * stride + h * HeadDim;
            Scores(kt, lenPad, q0, qn > 1 ? stride : 0, qn, keyBias, scores);
            for (int q = 0; q < qn; q++) Ops.Softmax(new Span<float>(scores + q * lenPad, lenPad));
            if (j.Probs != null)
                for (int q = 0; q < qn; q++)
                    new ReadOnlySpan<float>(scores + q * lenPad, len).CopyTo(new Span<float>(j.Probs + j.ProbStart[s] + (long)h * len * len + (long)(i0 + q) * len, len));
            float* o = j.Ctx + (long)(start + i0) * d + h * HeadDim;
            Context(scores, lenPad, v, len, o, d, qn);
        }
    }

    /// <summary>scores[q, t] = q_q · kt[:, t] + keyBias[t] for eight queries (rows q0 + q·qStride; past qn, row qn-1
    /// again), 16 keys at a time: one key vector feeds eight accumulator chains.</summary>
    static void Scores(float* kt, int lenPad, float* q0, int qStride, int qn, float* keyBias, float* scores)
    {
        float* q1 = q0 + Math.Min(1, qn - 1) * qStride, q2 = q0 + Math.Min(2, qn - 1) * qStride, q3 = q0 + Math.Min(3, qn - 1) * qStride;
        float* q4 = q0 + Math.Min(4, qn - 1) * qStride, q5 = q0 + Math.Min(5, qn - 1) * qStride, q6 = q0 + Math.Min(6, qn - 1) * qStride;
        float* q7 = q0 + Math.Min(7, qn - 1) * qStride;
        for (int t = 0; t < lenPad; t += 16)
        {
            var bias = Vector512.Load(keyBias + t);
            Vector512<float> a0 = bias, a1 = bias, a2 = bias, a3 = bias, a4 = bias, a5 = bias, a6 = bias, a7 = bias;
            float* k = kt + t;
            for (int c = 0; c < HeadDim; c++, k += lenPad)
            {
                var kv = Vector512.Load(k);
                a0 = Vector512.FusedMultiplyAdd(Vector512.Create(q0[c]), kv, a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Create(q1[c]), kv, a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.Create(q2[c]), kv, a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.Create(q3[c]), kv, a3);
                a4 = Vector512.FusedMultiplyAdd(Vector512.Create(q4[c]), kv, a4);
                a5 = Vector512.FusedMultiplyAdd(Vector512.Create(q5[c]), kv, a5);
                a6 = Vector512.FusedMultiplyAdd(Vector512.Create(q6[c]), kv, a6);
                a7 = Vector512.FusedMultiplyAdd(Vector512.Create(q7[c]), kv, a7);
            }
            a0.Store(scores + t); a1.Store(scores + lenPad + t); a2.Store(scores + 2 * lenPad + t); a3.Store(scores + 3 * lenPad + t);
            a4.Store(scores + 4 * lenPad + t); a5.Store(scores + 5 * lenPad + t); a6.Store(scores + 6 * lenPad + t); a7.Store(scores + 7 * lenPad + t);
        }
    }

    /// <summary>out_q = Σ_t p[q, t] v[t] for up to eight queries (rows of 32 at o + q·ld); 16 accumulators, the
    /// probability rows past qn are read but not stored.</summary>
    static void Context(float* p, int lenPad, float* v, int len, float* o, int ld, int qn)
    {
        Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        Vector512<float> a40 = default, a41 = default, a50 = default, a51 = default, a60 = default, a61 = default, a70 = default, a71 = default;
        for (int t = 0; t < len; t++)
        {
            var v0 = Vector512.Load(v + t * HeadDim);
            var v1 = Vector512.Load(v + t * HeadDim + 16);
            float* pt = p + t;
            var s = Vector512.Create(pt[0]); a00 = Vector512.FusedMultiplyAdd(s, v0, a00); a01 = Vector512.FusedMultiplyAdd(s, v1, a01);
            s = Vector512.Create(pt[lenPad]); a10 = Vector512.FusedMultiplyAdd(s, v0, a10); a11 = Vector512.FusedMultiplyAdd(s, v1, a11);
            s = Vector512.Create(pt[2 * lenPad]); a20 = Vector512.FusedMultiplyAdd(s, v0, a20); a21 = Vector512.FusedMultiplyAdd(s, v1, a21);
            s = Vector512.Create(pt[3 * lenPad]); a30 = Vector512.FusedMultiplyAdd(s, v0, a30); a31 = Vector512.FusedMultiplyAdd(s, v1, a31);
            s = Vector512.Create(pt[4 * lenPad]); a40 = Vector512.FusedMultiplyAdd(s, v0, a40); a41 = Vector512.FusedMultiplyAdd(s, v1, a41);
            s = Vector512.Create(pt[5 * lenPad]); a50 = Vector512.FusedMultiplyAdd(s, v0, a50); a51 = Vector512.FusedMultiplyAdd(s, v1, a51);
            s = Vector512.Create(pt[6 * lenPad]); a60 = Vector512.FusedMultiplyAdd(s, v0, a60); a61 = Vector512.FusedMultiplyAdd(s, v1, a61);
            s = Vector512.Create(pt[7 * lenPad]); a70 = Vector512.FusedMultiplyAdd(s, v0, a70); a71 = Vector512.FusedMultiplyAdd(s, v1, a71);
        }
        a00.Store(o); a01.Store(o + 16);
        if (qn > 1) { a10.Store(o + ld); a11.Store(o + ld + 16); }
        if (qn > 2) { a20.Store(o + 2 * ld); a21.Store(o + 2 * ld + 16); }
        if (qn > 3) { a30.Store(o + 3 * ld); a31.Store(o + 3 * ld + 16); }
        if (qn > 4) { a40.Store(o + 4 * ld); a41.Store(o + 4 * ld + 16); }
        if (qn > 5) { a50.Store(o + 5 * ld); a51.Store(o + 5 * ld + 16); }
        if (qn > 6) { a60.Store(o + 6 * ld); a61.Store(o + 6 * ld + 16); }
        if (qn > 7) { a70.Store(o + 7 * ld); a71.Store(o + 7 * ld + 16); }
    }
}

/// <summary>Plain loops (double accumulation) for what <see cref="EncoderAttention"/> computes; tests compare the two.</summary>
public static class EncoderAttentionReference
{
    public static void Run(ReadOnlySpan<float> qkv, ReadOnlySpan<int> offsets, int heads, int headDim, ReadOnlySpan<float> logSize, Span<float> ctx)
    {
        int d = heads * headDim, stride = 3 * d;
        double scale = 1 / Math.Sqrt(headDim);
        for (int s = 0; s + 1 < offsets.Length; s++)
        {
            int start = offsets[s], len = offsets[s + 1] - start;
            var p = new double[len];
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < len; i++)
                {
                    double max = double.NegativeInfinity;
                    for (int t = 0; t < len; t++)
                    {
                        double acc = 0;
                        for (int c = 0; c < headDim; c++)
                            acc += (double)qkv[(start + i) * stride + h * headDim + c] * qkv[(start + t) * stride + d + h * headDim + c];
                        p[t] = acc * scale + (logSize.Length == 0 ? 0 : logSize[start + t]);
                        max = Math.Max(max, p[t]);
                    }
                    double sum = 0;
                    for (int t = 0; t < len; t++) sum += p[t] = Math.Exp(p[t] - max);
                    for (int c = 0; c < headDim; c++)
                    {
                        double acc = 0;
                        for (int t = 0; t < len; t++) acc += p[t] / sum * qkv[(start + t) * stride + 2 * d + h * headDim + c];
                        ctx[(start + i) * d + h * headDim + c] = (float)acc;
                    }
                }
        }
    }
}
