using System.Runtime.Intrinsics;

namespace Pare.Kernels;

/// <summary>
/// Attention of one query head over an explicit list of cached positions (KV policies): softmax(q·K[p]/√d) · V[p].
/// K in <see cref="BlockedAttention"/>'s blocked layout, V position-major. The vector path scores a whole 16-position
/// K block at once (a block's d-th row is one cache line, so a lone position costs the same memory traffic as its whole
/// block) and keeps the selected lanes; <see cref="AttendReference"/> is the scalar reference it is tested against.
/// </summary>
public static unsafe class SelectedAttention
{
    const int B = BlockedAttention.Block;

    /// <summary>
    /// out = Σ_p softmax_p(q·K(kvHead, p) / √headDim) V(kvHead, p) over <paramref name="first"/> then <paramref name="second"/>
    /// (positions, any order; runs inside one block are scored once); <paramref name="scores"/> is scratch of at least
    /// their total length.
    /// </summary>
    public static void Attend(ReadOnlySpan<float> q, ReadOnlySpan<float> kBlocks, int capacity, ReadOnlySpan<float> v, int kvHeads, int headDim,
        int kvHead, ReadOnlySpan<int> first, ReadOnlySpan<int> second, Span<float> scores, Span<float> output)
    {
        int n = first.Length + second.Length, kvd = kvHeads * headDim;
        if (n == 0) throw new ArgumentException("no positions to attend");
        if (!Vector512.IsHardwareAccelerated || headDim % B != 0)
        {
            AttendReference(q, kBlocks, capacity, v, kvHeads, headDim, kvHead, first, second, scores, output);
            return;
        }
        if (q.Length < headDim || output.Length < headDim || scores.Length < n) throw new ArgumentException("q, output or scores too short");
        if (kBlocks.Length < BlockedAttention.CacheFloats(capacity, kvHeads, headDim) || (uint)kvHead >= (uint)kvHeads) throw new ArgumentException("the K cache is smaller than its capacity, or no such K/V head");
        float scale = 1f / MathF.Sqrt(headDim);
        long kBase = BlockedAttention.Index(capacity, headDim, kvHead, 0, 0);
        fixed (float* pq = q, pk = kBlocks, pv = v, ps = scores, po = output)
        fixed (int* pf = first, pse = second)
        {
            Check(pf, first.Length, capacity, v.Length, kvd);
            Check(pse, second.Length, capacity, v.Length, kvd);
            Score(pq, pk + kBase, headDim, pf, first.Length, ps, scale);
            Score(pq, pk + kBase, headDim, pse, second.Length, ps + first.Length, scale);
            float inv = 1f / Ops.ExpMinusMax(scores[..n]);
            float* vHead = pv + kvHead * headDim;
            // V: 64 output floats (four vectors) per pass over the weights, in registers.
            for (int d0 = 0; d0 < headDim; d0 += 4 * B)
            {
                int vecs = Math.Min(4, (headDim - d0) / B);
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (int i = 0; i < n; i++)
                {
                    int p = i < first.Length ? pf[i] : pse[i - first.Length];
                    float* row = vHead + (long)p * kvd + d0;
                    var w = Vector512.Create(ps[i]);
                    a0 += w * Vector512.Load(row);
                    if (vecs > 1) a1 += w * Vector512.Load(row + B);
                    if (vecs > 2) a2 += w * Vector512.Load(row + 2 * B);
                    if (vecs > 3) a3 += w * Vector512.Load(row + 3 * B);
                }
                var s = Vector512.Create(inv);
                (a0 * s).Store(po + d0);
                if (vecs > 1) (a1 * s).Store(po + d0 + B);
                if (vecs > 2) (a2 * s).Store(po + d0 + 2 * B);
                if (vecs > 3) (a3 * s).Store(po + d0 + 3 * B);
            }
        }
    }

    static void Check(int* pos, int count, int capacity, int vLength, int kvd)
    {
        for (int i = 0; i < count; i++)
            if ((uint)pos[i] >= (uint)capacity || (long)(pos[i] + 1) * kvd > vLength) throw new ArgumentOutOfRangeException(nameof(pos), $"position {pos[i]} outside the cache");
    }

    /// <summary>Scores of count positions into dst; consecutive positions in one 16-position block share one block pass.</summary>
    static void Score(float* q, float* k, int headDim, int* pos, int count, float* dst, float scale)
    {
        float* lanes = stackalloc float[B];
        int i = 0;
        while (i < count)
        {
            int block = pos[i] / B, j = i + 1;
            while (j < count && pos[j] / B == block) j++;
            float* kb = k + (long)block * headDim * B;
            Vector512<float> a0 = default, a1 = default;
            for (int d = 0; d < headDim; d += 2)
            {
                a0 += Vector512.Create(q[d]) * Vector512.Load(kb + d * B);
                a1 += Vector512.Create(q[d + 1]) * Vector512.Load(kb + (d + 1) * B);
            }
            ((a0 + a1) * scale).Store(lanes);
            for (; i < j; i++) dst[i] = lanes[pos[i] % B];
        }
    }

    /// <summary>
    /// Σ_d max(q_d·min_d, q_d·max_d): an upper bound of q·k for every k with min &lt;= k &lt;= max per channel (Quest's page
    /// score). Vectorized; <see cref="BoundDotReference"/> is its reference.
    /// </summary>
    public static float BoundDot(ReadOnlySpan<float> q, ReadOnlySpan<float> min, ReadOnlySpan<float> max)
    {
        int n = q.Length;
        if (min.Length < n || max.Length < n) throw new ArgumentException("bounds shorter than the query");
        if (!Vector512.IsHardwareAccelerated || n % B != 0) return BoundDotReference(q, min, max);
        fixed (float* pq = q, pmin = min, pmax = max)
        {
            var acc = Vector512<float>.Zero;
            for (int d = 0; d < n; d += B)
            {
                var x = Vector512.Load(pq + d);
                acc += Vector512.Max(x * Vector512.Load(pmin + d), x * Vector512.Load(pmax + d));
            }
            return Vector512.Sum(acc);
        }
    }

    /// <summary>The scalar reference of <see cref="BoundDot"/>.</summary>
    public static float BoundDotReference(ReadOnlySpan<float> q, ReadOnlySpan<float> min, ReadOnlySpan<float> max)
    {
        float s = 0;
        for (int d = 0; d < q.Length; d++) s += Math.Max(q[d] * min[d], q[d] * max[d]);
        return s;
    }

    /// <summary>The scalar reference of <see cref="Attend"/>.</summary>
    public static void AttendReference(ReadOnlySpan<float> q, ReadOnlySpan<float> kBlocks, int capacity, ReadOnlySpan<float> v, int kvHeads, int headDim,
        int kvHead, ReadOnlySpan<int> first, ReadOnlySpan<int> second, Span<float> scores, Span<float> output)
    {
        int n = first.Length + second.Length, kvd = kvHeads * headDim;
        if (n == 0) throw new ArgumentException("no positions to attend");
        float scale = 1f / MathF.Sqrt(headDim), max = float.NegativeInfinity;
        for (int i = 0; i < n; i++)
        {
            int p = i < first.Length ? first[i] : second[i - first.Length];
            long at = BlockedAttention.Index(capacity, headDim, kvHead, p, 0);
            float s = 0;
            for (int d = 0; d < headDim; d++) s += q[d] * kBlocks[(int)(at + d * B)];
            s *= scale;
            scores[i] = s;
            if (s > max) max = s;
        }
        float sum = 0;
        for (int i = 0; i < n; i++) { scores[i] = MathF.Exp(scores[i] - max); sum += scores[i]; }
        output[..headDim].Clear();
        float inv = 1f / sum;
        for (int i = 0; i < n; i++)
        {
            int p = i < first.Length ? first[i] : second[i - first.Length];
            var row = v.Slice(p * kvd + kvHead * headDim, headDim);
            float w = scores[i] * inv;
            for (int d = 0; d < headDim; d++) output[d] += w * row[d];
        }
    }
}
