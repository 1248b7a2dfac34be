using Pare.Training.Kernels;

namespace Pare.Training.Ops;

/// <summary>
/// Causal grouped-query self-attention (Vaswani et al. 2017; Ainslie et al. 2023) over batches of independent sequences:
/// for query head h (sharing key/value head h / (heads / kvHeads)), o_t = Σ_{p ≤ t} softmax_p(q_t · k_p / sqrt(d)) v_p.
/// Backward, per row t with P = softmax(S): dV_p += P_p dO_t; dP_p = dO_t · v_p; dS = P ⊙ (dP − Σ P ⊙ dP);
/// dq_t = Σ_p dS_p k_p / sqrt(d); dK_p += dS_p q_t / sqrt(d).
/// The backward pass recomputes P instead of storing (heads · T²) probabilities per layer. Each (sequence, head) is a few
/// small matrix products (<see cref="Gemm"/>) that skip the masked half of the square.
/// Work is split by (sequence, KV head): all query heads of a group run in one job, so dK and dV are summed in a fixed
/// order and the result is reproducible.
/// </summary>
public sealed record AttentionShape(int Batch, int SeqLen, int Heads, int KvHeads, int HeadDim)
{
    public int QDim => Heads * HeadDim;
    public int KvDim => KvHeads * HeadDim;
    public float Scale => 1f / MathF.Sqrt(HeadDim);
}

public static class Attention
{
    /// <param name="q">(batch · seqLen, heads · headDim), already rotated</param>
    /// <param name="k">(batch · seqLen, kvHeads · headDim), already rotated</param>
    /// <param name="v">(batch · seqLen, kvHeads · headDim)</param>
    /// <param name="o">(batch · seqLen, heads · headDim) output</param>
    public static unsafe void Forward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> o, AttentionShape s, int threads)
    {
        Check(q, k, v, o, s);
        fixed (float* pq = q, pk = k, pv = v, po = o)
        {
            nint aq = (nint)pq, ak = (nint)pk, av = (nint)pv, ao = (nint)po;
            FixedParallel.For(s.Batch * s.KvHeads, threads, (j0, j1) =>
            {
                var w = Workspace.For(s);
                for (int job = j0; job < j1; job++) ForwardJob((float*)aq, (float*)ak, (float*)av, (float*)ao, s, job / s.KvHeads, job % s.KvHeads, w);
            });
        }
    }

    /// <param name="dO">(batch · seqLen, heads · headDim)</param>
    /// <param name="dq">(batch · seqLen, heads · headDim), written</param>
    /// <param name="dk">(batch · seqLen, kvHeads · headDim), written</param>
    /// <param name="dv">(batch · seqLen, kvHeads · headDim), written</param>
    public static unsafe void Backward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<float> dO,
        Span<float> dq, Span<float> dk, Span<float> dv, AttentionShape s, int threads)
    {
        Check(q, k, v, dO, s);
        Check(dq, dk, dv, dO, s);
        fixed (float* pq = q, pk = k, pv = v, pdo = dO, pdq = dq, pdk = dk, pdv = dv)
        {
            nint aq = (nint)pq, ak = (nint)pk, av = (nint)pv, ado = (nint)pdo, adq = (nint)pdq, adk = (nint)pdk, adv = (nint)pdv;
            FixedParallel.For(s.Batch * s.KvHeads, threads, (j0, j1) =>
            {
                var w = Workspace.For(s);
                for (int job = j0; job < j1; job++)
                    BackwardJob((float*)aq, (float*)ak, (float*)av, (float*)ado, (float*)adq, (float*)adk, (float*)adv, s, job / s.KvHeads, job % s.KvHeads, w);
            });
        }
    }

    /// <summary>Per-thread scratch: one KV head's keys/values transposed (head_dim, seqLen) and two (seqLen, seqLen) score matrices.</summary>
    sealed class Workspace(AttentionShape s)
    {
        [ThreadStatic] static Workspace? t_cached;

        /// <summary>This thread's workspace, reused while the shape stays the same (every cell is written before it is read).</summary>
        public static Workspace For(AttentionShape s)
        {
            var w = t_cached;
            if (w == null || w.SeqLen != s.SeqLen || w.HeadDim != s.HeadDim) t_cached = w = new Workspace(s);
            return w;
        }

        public int SeqLen { get; } = s.SeqLen;
        public int HeadDim { get; } = s.HeadDim;
        public readonly float[] Kt = GC.AllocateArray<float>(s.HeadDim * s.SeqLen, pinned: true);  // (head_dim, seqLen)
        public readonly float[] Vt = GC.AllocateArray<float>(s.HeadDim * s.SeqLen, pinned: true);  // (head_dim, seqLen)
        public readonly float[] P = GC.AllocateArray<float>(s.SeqLen * s.SeqLen, pinned: true);    // (seqLen, seqLen) scores, then probabilities
        public readonly float[] DP = GC.AllocateArray<float>(s.SeqLen * s.SeqLen, pinned: true);   // (seqLen, seqLen) dP, then dS
    }

    static unsafe void Transpose(float* src, AttentionShape s, int row0, int kvh, float[] dst)
    {
        int hd = s.HeadDim, T = s.SeqLen;
        for (int j = 0; j < T; j++)
        {
            float* r = src + (long)(row0 + j) * s.KvDim + kvh * hd;
            for (int d = 0; d < hd; d++) dst[d * T + j] = r[d];
        }
    }

    /// <summary>P = causal softmax(scale · Q_h Kᵀ) into w.P; entries right of the diagonal that the products read are zeroed.</summary>
    static unsafe void Probabilities(float* qh, AttentionShape s, float* kt, float* p)
    {
        int T = s.SeqLen;
        Gemm.Rows(0, T, T, s.HeadDim, qh, s.QDim, 1, kt, T, p, T, accumulate: false, Causal.ColumnsToRow);
        for (int t = 0; t < T; t++)
        {
            var row = new Span<float>(p + (long)t * T, T);
            GradMatMul.SoftmaxInPlace(row[..(t + 1)], s.Scale);
            row[(t + 1)..Math.Min(T, t + Gemm.TileRows)].Clear();
        }
    }

    static unsafe void ForwardJob(float* q, float* k, float* v, float* o, AttentionShape s, int b, int kvh, Workspace w)
    {
        int hd = s.HeadDim, T = s.SeqLen, group = s.Heads / s.KvHeads, row0 = b * T;
        Transpose(k, s, row0, kvh, w.Kt);
        fixed (float* kt = w.Kt, p = w.P)
        {
            float* vh = v + (long)row0 * s.KvDim + kvh * hd;
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
            {
                long qo = (long)row0 * s.QDim + h * hd;
                Probabilities(q + qo, s, kt, p);
                // O_h = P · V.
                Gemm.Rows(0, T, hd, T, p, T, 1, vh, s.KvDim, o + qo, s.QDim, accumulate: false, Causal.KToRow);
            }
        }
    }

    static unsafe void BackwardJob(float* q, float* k, float* v, float* dO, float* dq, float* dk, float* dv, AttentionShape s, int b, int kvh, Workspace w)
    {
        int hd = s.HeadDim, T = s.SeqLen, group = s.Heads / s.KvHeads, row0 = b * T;
        Transpose(k, s, row0, kvh, w.Kt);
        Transpose(v, s, row0, kvh, w.Vt);
        long kvo = (long)row0 * s.KvDim + kvh * hd;
        for (int j = 0; j < T; j++)
        {
            new Span<float>(dk + kvo + (long)j * s.KvDim, hd).Clear();
            new Span<float>(dv + kvo + (long)j * s.KvDim, hd).Clear();
        }
        fixed (float* kt = w.Kt, vt = w.Vt, p = w.P, dp = w.DP)
        {
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
            {
                long qo = (long)row0 * s.QDim + h * hd;
                Probabilities(q + qo, s, kt, p);
                // dP = dO_h · Vᵀ.
                Gemm.Rows(0, T, T, hd, dO + qo, s.QDim, 1, vt, T, dp, T, accumulate: false, Causal.ColumnsToRow);
                // dS = P ⊙ (dP − Σ_j P ⊙ dP) · scale, zero right of the diagonal.
                for (int t = 0; t < T; t++)
                {
                    var pr = new Span<float>(p + (long)t * T, t + 1);
                    var dr = new Span<float>(dp + (long)t * T, T);
                    float sum = GradMatMul.Dot(pr, dr[..(t + 1)]);
                    for (int j = 0; j <= t; j++) dr[j] = pr[j] * (dr[j] - sum) * s.Scale;
                    dr[(t + 1)..Math.Min(T, t + Gemm.TileRows)].Clear();
                }
                // dQ_h = dS · K;  dK += dSᵀ · Q_h;  dV += Pᵀ · dO_h.
                Gemm.Rows(0, T, hd, T, dp, T, 1, k + kvo, s.KvDim, dq + qo, s.QDim, accumulate: false, Causal.KToRow);
                Gemm.Rows(0, T, hd, T, dp, 1, T, q + qo, s.QDim, dk + kvo, s.KvDim, accumulate: true, Causal.KFromRow);
                Gemm.Rows(0, T, hd, T, p, 1, T, dO + qo, s.QDim, dv + kvo, s.KvDim, accumulate: true, Causal.KFromRow);
            }
        }
    }

    static void Check(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<float> o, AttentionShape s)
    {
        long rows = (long)s.Batch * s.SeqLen;
        if (q.Length < rows * s.QDim || o.Length < rows * s.QDim || k.Length < rows * s.KvDim || v.Length < rows * s.KvDim)
            throw new ArgumentException("attention operands are shorter than the shape implies");
    }
}
