namespace Pare.Kernels;

/// <summary>Causal grouped-query attention over a position-major KV cache, split over (token, head) on the kernel pool.</summary>
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
        ReadOnlySpan<int> parents = default)
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
            KernelThreadPool.Shared.Run(&Chunk, &job, n * heads, work < 1 << 16 ? 1 : threads);
        }
    }

    static void Chunk(void* ctx, int index)
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
