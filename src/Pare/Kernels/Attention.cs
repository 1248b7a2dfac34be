using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Pare.Kernels;

/// <summary>
/// Causal grouped-query attention over a position-major KV cache, split over (token, head) on the kernel pool. With
/// AVX-512 and a head size that is a multiple of 16, scores come 16 positions at a time (16 dot products kept in
/// registers and folded by <see cref="SmallBatch.Reduce"/>) and the weighted sum of V runs in registers; otherwise,
/// one dot product per position (<see cref="ChunkPortable"/>, also the reference the fast path is tested against).
/// </summary>
public static unsafe class Attention
{
    struct Job
    {
        public float* Q, K, V, Out;
        public int* Parents; // null: a chain (plain causal); else the tree's parent of each new token (-1 at the root)
        public int Heads, Group, HeadDim, QDim, KvDim, Pos0;
        public float Scale;
    }

    /// <summary>
    /// For each of the n new tokens t (at position pos0 + t) and head h: out[t, h] = softmax(q[t, h] · K[0..pos0+t] * scale) · V,
    /// with K/V head h / (heads / kvHeads). q and out: (n, heads * headDim); kCache and vCache: (positions, kvHeads * headDim).
    /// Only one row of scores per (token, head) is materialized, in a per-thread buffer.
    /// With <paramref name="parents"/> the n new tokens form a tree (parent index &lt; own index, -1 at the root): token t
    /// sees the cached prefix and only its own ancestors among the new tokens (speculative verification).
    /// </summary>
    public static void CausalGqa(ReadOnlySpan<float> q, int n, int heads, int kvHeads, int headDim,
        ReadOnlySpan<float> kCache, ReadOnlySpan<float> vCache, int pos0, Span<float> output, int threads,
        ReadOnlySpan<int> parents = default) =>
        CausalGqa(q, n, heads, kvHeads, headDim, kCache, vCache, pos0, output, threads, parents, portable: !MatMul.Avx512);

    /// <summary>As above; <paramref name="portable"/> forces the one-dot-product-per-position path (tests compare the two).</summary>
    internal static void CausalGqa(ReadOnlySpan<float> q, int n, int heads, int kvHeads, int headDim,
        ReadOnlySpan<float> kCache, ReadOnlySpan<float> vCache, int pos0, Span<float> output, int threads,
        ReadOnlySpan<int> parents, bool portable)
    {
        if (!parents.IsEmpty && parents.Length != n) throw new ArgumentException("parents needs one entry per new token", nameof(parents));
        if (heads % kvHeads != 0) throw new ArgumentException("heads must be a multiple of kvHeads", nameof(kvHeads));
        int qd = heads * headDim, kvd = kvHeads * headDim;
        if (q.Length < n * qd || output.Length < n * qd) throw new ArgumentException("q and output need n * heads * headDim values");
        if (kCache.Length < (long)(pos0 + n) * kvd || vCache.Length < (long)(pos0 + n) * kvd) throw new ArgumentException("the caches must hold pos0 + n positions");
        fixed (float* pq = q, pk = kCache, pv = vCache, po = output)
        fixed (int* pp = parents)
        {
            var job = new Job
            {
                Q = pq, K = pk, V = pv, Out = po, Parents = parents.IsEmpty ? null : pp, Heads = heads, Group = heads / kvHeads, HeadDim = headDim,
                QDim = qd, KvDim = kvd, Pos0 = pos0, Scale = 1f / MathF.Sqrt(headDim),
            };
            // Decode with a short cache is a few microseconds of work: not worth waking a second thread.
            long work = (long)n * heads * (pos0 + n) * headDim;
            int t = work < 1 << 16 ? 1 : threads;
            if (portable || headDim % 16 != 0 || headDim > MaxFastHeadDim) KernelThreadPool.Shared.Run(&ChunkPortable, &job, n * heads, t);
            else KernelThreadPool.Shared.Run(&Chunk, &job, n * heads, t);
        }
    }

    const int MaxFastHeadDim = 256;

    static void Chunk(void* ctx, int index)
    {
        ref readonly Job j = ref *(Job*)ctx;
        int t = index / j.Heads, h = index % j.Heads;
        int hd = j.HeadDim, kvh = h / j.Group, kvd = j.KvDim;
        int len = j.Pos0 + t + 1;
        float* q = j.Q + (long)t * j.QDim + h * hd;
        float* s = ThreadBuffers.Scores(len + 16);
        float* k = j.K + kvh * hd;
        var scale = Vector512.Create(j.Scale);

        // Scores, 16 positions per block: lane i of the folded vector is the dot product of position p + i.
        int p = 0;
        for (; p + 16 <= len; p += 16)
        {
            float* kp = k + (long)p * kvd;
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
            Vector512<float> a8 = default, a9 = default, a10 = default, a11 = default, a12 = default, a13 = default, a14 = default, a15 = default;
            for (int c = 0; c < hd; c += 16)
            {
                var qc = Vector512.Load(q + c);
                float* r = kp + c;
                a0 = Vector512.FusedMultiplyAdd(Vector512.Load(r), qc, a0); a1 = Vector512.FusedMultiplyAdd(Vector512.Load(r + kvd), qc, a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 2 * kvd), qc, a2); a3 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 3 * kvd), qc, a3);
                r += 4 * kvd;
                a4 = Vector512.FusedMultiplyAdd(Vector512.Load(r), qc, a4); a5 = Vector512.FusedMultiplyAdd(Vector512.Load(r + kvd), qc, a5);
                a6 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 2 * kvd), qc, a6); a7 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 3 * kvd), qc, a7);
                r += 4 * kvd;
                a8 = Vector512.FusedMultiplyAdd(Vector512.Load(r), qc, a8); a9 = Vector512.FusedMultiplyAdd(Vector512.Load(r + kvd), qc, a9);
                a10 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 2 * kvd), qc, a10); a11 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 3 * kvd), qc, a11);
                r += 4 * kvd;
                a12 = Vector512.FusedMultiplyAdd(Vector512.Load(r), qc, a12); a13 = Vector512.FusedMultiplyAdd(Vector512.Load(r + kvd), qc, a13);
                a14 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 2 * kvd), qc, a14); a15 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 3 * kvd), qc, a15);
            }
            // Reduce puts argument 4j + l in lane 4l + j: pass position 4l + j in that slot so lane i is position i.
            (SmallBatch.Reduce(a0, a4, a8, a12, a1, a5, a9, a13, a2, a6, a10, a14, a3, a7, a11, a15) * scale).Store(s + p);
        }
        for (; p < len; p++)
        {
            float* kp = k + (long)p * kvd;
            var acc = Vector512<float>.Zero;
            for (int c = 0; c < hd; c += 16) acc = Vector512.FusedMultiplyAdd(Vector512.Load(kp + c), Vector512.Load(q + c), acc);
            s[p] = Vector512.Sum(acc) * j.Scale;
        }
        // A tree token sees the prefix and its own ancestors among the new tokens.
        if (j.Parents != null)
            for (int b = t, ancestor = t; b >= 0; b--)
            {
                if (b == ancestor) ancestor = j.Parents[b];
                else s[j.Pos0 + b] = float.NegativeInfinity;
            }
        Ops.Softmax(new Span<float>(s, len));

        // out = sum_p s[p] v[p], 16 lanes of the head at a time; hidden positions have weight exactly 0.
        float* v = j.V + kvh * hd, o = j.Out + (long)t * j.QDim + h * hd;
        for (int c = 0; c < hd; c += 16)
        {
            float* vp = v + c;
            Vector512<float> o0 = default, o1 = default, o2 = default, o3 = default;
            int i = 0;
            for (; i + 4 <= len; i += 4, vp += 4 * kvd)
            {
                o0 = Vector512.FusedMultiplyAdd(Vector512.Create(s[i]), Vector512.Load(vp), o0);
                o1 = Vector512.FusedMultiplyAdd(Vector512.Create(s[i + 1]), Vector512.Load(vp + kvd), o1);
                o2 = Vector512.FusedMultiplyAdd(Vector512.Create(s[i + 2]), Vector512.Load(vp + 2 * kvd), o2);
                o3 = Vector512.FusedMultiplyAdd(Vector512.Create(s[i + 3]), Vector512.Load(vp + 3 * kvd), o3);
            }
            for (; i < len; i++, vp += kvd) o0 = Vector512.FusedMultiplyAdd(Vector512.Create(s[i]), Vector512.Load(vp), o0);
            ((o0 + o1) + (o2 + o3)).Store(o + c);
        }
    }

    static void ChunkPortable(void* ctx, int index)
    {
        ref readonly Job j = ref *(Job*)ctx;
        int t = index / j.Heads, h = index % j.Heads;
        int hd = j.HeadDim, kvh = h / j.Group;
        int len = j.Pos0 + t + 1; // causal: positions 0..pos0+t
        var qv = new ReadOnlySpan<float>(j.Q + (long)t * j.QDim + h * hd, hd);
        var s = new Span<float>(ThreadBuffers.Scores(len), len);
        float* k = j.K + kvh * hd;
        for (int p = 0; p < len; p++)
            s[p] = Visible(j.Parents, j.Pos0, p, t)
                ? Ops.Dot(qv, new ReadOnlySpan<float>(k + (long)p * j.KvDim, hd)) * j.Scale
                : float.NegativeInfinity;
        Ops.Softmax(s);
        var outv = new Span<float>(j.Out + (long)t * j.QDim + h * hd, hd);
        outv.Clear();
        float* v = j.V + kvh * hd;
        for (int p = 0; p < len; p++)
            if (s[p] != 0) Ops.Axpy(s[p], new ReadOnlySpan<float>(v + (long)p * j.KvDim, hd), outv);
    }

    /// <summary>Whether new token t may attend to cache position p: always in a chain; in a tree, the prefix and t's ancestors.</summary>
    static bool Visible(int* parents, int pos0, int p, int t)
    {
        if (parents == null || p < pos0) return true;
        int a = p - pos0, b = t;
        while (b > a) b = parents[b];
        return a == b;
    }
}
