using Pare.Training.Kernels;

namespace Pare.Training.Ops;

/// <summary>
/// Causal grouped-query self-attention (Vaswani et al. 2017; Ainslie et al. 2023) over batches of independent sequences:
/// for query head h (sharing key/value head h / (heads / kvHeads)), o_t = Σ_{p ≤ t} softmax_p(q_t · k_p / sqrt(d)) v_p.
/// Backward, per row t with P = softmax(S): dV_p += P_p dO_t; dP_p = dO_t · v_p; dS = P ⊙ (dP − Σ P ⊙ dP);
/// dq_t = Σ_p dS_p k_p / sqrt(d); dK_p += dS_p q_t / sqrt(d).
/// The backward pass recomputes P instead of storing (heads · T²) probabilities per layer.
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
    public static void Forward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> o, AttentionShape s, int threads)
    {
        unsafe
        {
            fixed (float* pq = q, pk = k, pv = v, po = o)
            {
                nint aq = (nint)pq, ak = (nint)pk, av = (nint)pv, ao = (nint)po;
                long rows = (long)s.Batch * s.SeqLen;
                FixedParallel.For(s.Batch * s.KvHeads, threads, (j0, j1) =>
                {
                    var qs = new ReadOnlySpan<float>((float*)aq, (int)(rows * s.QDim));
                    var ks = new ReadOnlySpan<float>((float*)ak, (int)(rows * s.KvDim));
                    var vs = new ReadOnlySpan<float>((float*)av, (int)(rows * s.KvDim));
                    var os = new Span<float>((float*)ao, (int)(rows * s.QDim));
                    var p = new float[s.SeqLen];
                    for (int job = j0; job < j1; job++) ForwardJob(qs, ks, vs, os, s, job / s.KvHeads, job % s.KvHeads, p);
                });
            }
        }
    }

    static void ForwardJob(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> o, AttentionShape s, int b, int kvh, float[] p)
    {
        int hd = s.HeadDim, group = s.Heads / s.KvHeads, row0 = b * s.SeqLen;
        for (int h = kvh * group; h < (kvh + 1) * group; h++)
            for (int t = 0; t < s.SeqLen; t++)
            {
                var qt = q.Slice((row0 + t) * s.QDim + h * hd, hd);
                var probs = p.AsSpan(0, t + 1);
                Probabilities(qt, k, s, row0, kvh, probs);
                var ot = o.Slice((row0 + t) * s.QDim + h * hd, hd);
                ot.Clear();
                for (int j = 0; j <= t; j++) GradMatMul.Axpy(probs[j], v.Slice((row0 + j) * s.KvDim + kvh * hd, hd), ot);
            }
    }

    /// <summary>P_j = softmax_j(q · k_j · scale) for j ≤ t (probs.Length = t + 1).</summary>
    static void Probabilities(ReadOnlySpan<float> qt, ReadOnlySpan<float> k, AttentionShape s, int row0, int kvh, Span<float> probs)
    {
        int hd = s.HeadDim;
        float max = float.NegativeInfinity;
        for (int j = 0; j < probs.Length; j++)
        {
            float sc = GradMatMul.Dot(qt, k.Slice((row0 + j) * s.KvDim + kvh * hd, hd)) * s.Scale;
            probs[j] = sc;
            max = MathF.Max(max, sc);
        }
        float sum = 0;
        for (int j = 0; j < probs.Length; j++) { probs[j] = MathF.Exp(probs[j] - max); sum += probs[j]; }
        float inv = 1f / sum;
        for (int j = 0; j < probs.Length; j++) probs[j] *= inv;
    }

    /// <param name="dO">(batch · seqLen, heads · headDim)</param>
    /// <param name="dq">(batch · seqLen, heads · headDim), written</param>
    /// <param name="dk">(batch · seqLen, kvHeads · headDim), written</param>
    /// <param name="dv">(batch · seqLen, kvHeads · headDim), written</param>
    public static void Backward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<float> dO,
        Span<float> dq, Span<float> dk, Span<float> dv, AttentionShape s, int threads)
    {
        dk.Clear();
        dv.Clear();
        unsafe
        {
            fixed (float* pq = q, pk = k, pv = v, pdo = dO, pdq = dq, pdk = dk, pdv = dv)
            {
                nint aq = (nint)pq, ak = (nint)pk, av = (nint)pv, ado = (nint)pdo, adq = (nint)pdq, adk = (nint)pdk, adv = (nint)pdv;
                int qn = s.Batch * s.SeqLen * s.QDim, kn = s.Batch * s.SeqLen * s.KvDim;
                FixedParallel.For(s.Batch * s.KvHeads, threads, (j0, j1) =>
                {
                    var p = new float[s.SeqLen];
                    var dp = new float[s.SeqLen];
                    for (int job = j0; job < j1; job++)
                        BackwardJob(new ReadOnlySpan<float>((float*)aq, qn), new ReadOnlySpan<float>((float*)ak, kn), new ReadOnlySpan<float>((float*)av, kn),
                            new ReadOnlySpan<float>((float*)ado, qn), new Span<float>((float*)adq, qn), new Span<float>((float*)adk, kn), new Span<float>((float*)adv, kn),
                            s, job / s.KvHeads, job % s.KvHeads, p, dp);
                });
            }
        }
    }

    static void BackwardJob(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<float> dO,
        Span<float> dq, Span<float> dk, Span<float> dv, AttentionShape s, int b, int kvh, float[] p, float[] dp)
    {
        int hd = s.HeadDim, group = s.Heads / s.KvHeads, row0 = b * s.SeqLen;
        for (int h = kvh * group; h < (kvh + 1) * group; h++)
            for (int t = 0; t < s.SeqLen; t++)
            {
                int qo = (row0 + t) * s.QDim + h * hd;
                var qt = q.Slice(qo, hd);
                var dot = dO.Slice(qo, hd);
                var probs = p.AsSpan(0, t + 1);
                Probabilities(qt, k, s, row0, kvh, probs);
                float sum = 0;
                for (int j = 0; j <= t; j++)
                {
                    int ko = (row0 + j) * s.KvDim + kvh * hd;
                    GradMatMul.Axpy(probs[j], dot, dv.Slice(ko, hd));
                    dp[j] = GradMatMul.Dot(dot, v.Slice(ko, hd));
                    sum += probs[j] * dp[j];
                }
                var dqt = dq.Slice(qo, hd);
                dqt.Clear();
                for (int j = 0; j <= t; j++)
                {
                    int ko = (row0 + j) * s.KvDim + kvh * hd;
                    float ds = probs[j] * (dp[j] - sum) * s.Scale;
                    GradMatMul.Axpy(ds, k.Slice(ko, hd), dqt);
                    GradMatMul.Axpy(ds, qt, dk.Slice(ko, hd));
                }
            }
    }
}
