using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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
    /// <summary>Rows prefetched ahead in gathers of scattered positions (more than a DRAM latency's worth of work).</summary>
    internal const int Ahead = 16;

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
                    a0 = Fma(w, Vector512.Load(row), a0);
                    if (vecs > 1) a1 = Fma(w, Vector512.Load(row + B), a1);
                    if (vecs > 2) a2 = Fma(w, Vector512.Load(row + 2 * B), a2);
                    if (vecs > 3) a3 = Fma(w, Vector512.Load(row + 3 * B), a3);
                }
                var s = Vector512.Create(inv);
                (a0 * s).Store(po + d0);
                if (vecs > 1) (a1 * s).Store(po + d0 + B);
                if (vecs > 2) (a2 * s).Store(po + d0 + 2 * B);
                if (vecs > 3) (a3 * s).Store(po + d0 + 3 * B);
            }
        }
    }

    /// <summary>
    /// The attention weights softmax_p(q·K(kvHead, p)/√headDim) of one query head over <paramref name="positions"/> (any
    /// order) into <paramref name="weights"/>: what H2O accumulates. Equal to <see cref="AttendReference"/>'s weights (test).
    /// </summary>
    public static void Weights(ReadOnlySpan<float> q, ReadOnlySpan<float> kBlocks, int capacity, int kvHeads, int headDim, int kvHead,
        ReadOnlySpan<int> positions, Span<float> weights)
    {
        int n = positions.Length;
        if (n == 0) return;
        if (weights.Length < n || q.Length < headDim || (uint)kvHead >= (uint)kvHeads) throw new ArgumentException("weights or q too short, or no such K/V head");
        if (kBlocks.Length < BlockedAttention.CacheFloats(capacity, kvHeads, headDim)) throw new ArgumentException("the K cache is smaller than its capacity");
        float scale = 1f / MathF.Sqrt(headDim);
        if (!Vector512.IsHardwareAccelerated || headDim % B != 0)
        {
            for (int i = 0; i < n; i++)
            {
                long at = BlockedAttention.Index(capacity, headDim, kvHead, positions[i], 0);
                float s = 0;
                for (int d = 0; d < headDim; d++) s += q[d] * kBlocks[(int)(at + d * B)];
                weights[i] = s * scale;
            }
        }
        else
        {
            fixed (float* pq = q, pk = kBlocks, pw = weights)
            fixed (int* pp = positions)
            {
                for (int i = 0; i < n; i++)
                    if ((uint)pp[i] >= (uint)capacity) throw new ArgumentOutOfRangeException(nameof(positions), $"position {pp[i]} outside the cache");
                Score(pq, pk + BlockedAttention.Index(capacity, headDim, kvHead, 0, 0), headDim, pp, n, pw, scale);
            }
        }
        Ops.Scale(weights[..n], 1f / Ops.ExpMinusMax(weights[..n]));
    }

    /// <summary>
    /// Every query head of one token: head h attends to the first <paramref name="prefixCounts"/>[h] positions of
    /// <paramref name="prefix"/>[h], then to <paramref name="own"/> (its chunk or tree ancestors). Heads of one K/V group
    /// given the same array and count (a policy that selects per K/V head, or the same positions for all) are scored
    /// together, up to four per pass, so each K block and V row is read once for them; units run on up to
    /// <paramref name="threads"/> threads. Equal, within rounding, to <see cref="Attend"/> per head (test).
    /// </summary>
    public static void AttendHeads(ReadOnlySpan<float> q, int heads, int kvHeads, int headDim, ReadOnlySpan<float> kBlocks, int capacity,
        ReadOnlySpan<float> v, int[][] prefix, int[] prefixCounts, ReadOnlySpan<int> own, Span<float> output, int threads)
    {
        if (!Vector512.IsHardwareAccelerated || headDim % B != 0 || heads % kvHeads != 0)
        {
            var scratch = new float[prefixCounts.Max() + own.Length];
            for (int h = 0; h < heads; h++)
                Attend(q.Slice(h * headDim, headDim), kBlocks, capacity, v, kvHeads, headDim, h / (heads / kvHeads), prefix[h].AsSpan(0, prefixCounts[h]), own, scratch, output.Slice(h * headDim, headDim));
            return;
        }
        int group = heads / kvHeads, kvd = kvHeads * headDim;
        if (own.IsEmpty && prefixCounts.AsSpan(0, heads).Contains(0)) throw new ArgumentException("no positions to attend");
        if (q.Length < heads * headDim || output.Length < heads * headDim || prefix.Length < heads || prefixCounts.Length < heads) throw new ArgumentException("q, output or selections too short");
        if (kBlocks.Length < BlockedAttention.CacheFloats(capacity, kvHeads, headDim)) throw new ArgumentException("the K cache is smaller than its capacity");
        // Units: runs of up to 4 heads of one group sharing a selection; their positions copied into one pinned buffer.
        var unitHead = new int[heads + 1];
        var unitCount = new int[heads];
        var unitPos = new int[heads];
        int units = 0, total = 0, maxLen = 0;
        for (int h = 0; h < heads;)
        {
            int m = 1;
            while (m < 4 && h + m < heads && (h + m) % group != 0 && ReferenceEquals(prefix[h + m], prefix[h]) && prefixCounts[h + m] == prefixCounts[h]) m++;
            if (prefixCounts[h] < 0 || prefixCounts[h] > prefix[h].Length) throw new ArgumentException("a selection count exceeds its array");
            unitHead[units] = h; unitCount[units] = m; unitPos[units] = total;
            total += prefixCounts[h]; maxLen = Math.Max(maxLen, prefixCounts[h]);
            units++; h += m;
        }
        unitHead[units] = heads;
        var flat = ArrayPool<int>.Shared.Rent(Math.Max(1, total));
        int n = maxLen + own.Length;
        var scores = ArrayPool<float>.Shared.Rent(Math.Max(1, heads * n));
        try
        {
            for (int u = 0; u < units; u++) prefix[unitHead[u]].AsSpan(0, prefixCounts[unitHead[u]]).CopyTo(flat.AsSpan(unitPos[u]));
            fixed (float* pq = q, pk = kBlocks, pv = v, po = output, ps = scores)
            fixed (int* pf = flat, po2 = own, ph = unitHead, pc = unitCount, pp = unitPos, pcnt = prefixCounts)
            {
                Check(pf, total, capacity, v.Length, kvd);
                Check(po2, own.Length, capacity, v.Length, kvd);
                var job = new HeadsJob
                {
                    Q = pq, K = pk, V = pv, Out = po, Scores = ps, Flat = pf, Own = po2, OwnCount = own.Length, UnitHead = ph, UnitHeads = pc,
                    UnitPos = pp, Counts = pcnt, Group = group, HeadDim = headDim, KvDim = kvd, Stride = n, BlocksPerHead = (capacity + B - 1) / B,
                    Scale = 1f / MathF.Sqrt(headDim),
                };
                long work = (long)heads * n * headDim;
                KernelThreadPool.Shared.Run(&Unit, &job, units, work < 1 << 14 ? 1 : threads);
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(flat);
            ArrayPool<float>.Shared.Return(scores);
        }
    }

    /// <summary>
    /// Scaled scores q_h·K(p)/√headDim of every query head h for the positions [from, to): logits[h * (to - from) + i].
    /// Heads of one K/V group are scored together (each K block row read once for up to four), units on up to
    /// <paramref name="threads"/> threads. The selection pass of policies that score the whole prefix (TokenSelect).
    /// </summary>
    public static void Logits(ReadOnlySpan<float> q, int heads, int kvHeads, int headDim, ReadOnlySpan<float> kBlocks, int capacity,
        int from, int to, Span<float> logits, int threads)
    {
        int n = to - from, group = heads / kvHeads;
        if (n <= 0) return;
        if (from < 0 || to > capacity || logits.Length < heads * n || q.Length < heads * headDim || heads % kvHeads != 0) throw new ArgumentException("bad range, heads or buffers");
        if (kBlocks.Length < BlockedAttention.CacheFloats(capacity, kvHeads, headDim)) throw new ArgumentException("the K cache is smaller than its capacity");
        float scale = 1f / MathF.Sqrt(headDim);
        if (!Vector512.IsHardwareAccelerated || headDim % B != 0)
        {
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < n; i++)
                {
                    long at = BlockedAttention.Index(capacity, headDim, h / group, from + i, 0);
                    float sum = 0;
                    for (int d = 0; d < headDim; d++) sum += q[h * headDim + d] * kBlocks[(int)(at + d * B)];
                    logits[h * n + i] = sum * scale;
                }
            return;
        }
        var positions = ArrayPool<int>.Shared.Rent(n);
        try
        {
            for (int i = 0; i < n; i++) positions[i] = from + i;
            fixed (float* pq = q, pk = kBlocks, pl = logits)
            fixed (int* pp = positions)
            {
                var job = new LogitsJob { Q = pq, K = pk, Out = pl, Pos = pp, N = n, Heads = heads, Group = group, HeadDim = headDim, BlocksPerHead = (capacity + B - 1) / B, Scale = scale };
                long work = (long)heads * n * headDim;
                KernelThreadPool.Shared.Run(&LogitsUnit, &job, (heads + 3) / 4, work < 1 << 14 ? 1 : threads);
            }
        }
        finally { ArrayPool<int>.Shared.Return(positions); }
    }

    struct LogitsJob
    {
        public float* Q, K, Out;
        public int* Pos;
        public int N, Heads, Group, HeadDim, BlocksPerHead;
        public float Scale;
    }

    /// <summary>Heads 4u.. of one K/V head (a unit never crosses a group: groups are a multiple of 4 or split below).</summary>
    static void LogitsUnit(void* ctx, int u)
    {
        var j = (LogitsJob*)ctx;
        for (int h = 4 * u; h < Math.Min(4 * u + 4, j->Heads);)
        {
            int m = UnitRun(u, h, j->Heads, j->Group);
            float* k = j->K + (long)(h / j->Group) * j->BlocksPerHead * j->HeadDim * B;
            ScoreHeads(j->Q + h * j->HeadDim, m, k, j->HeadDim, j->Pos, j->N, j->Out + (long)h * j->N, j->N, j->Scale);
            h += m;
        }
    }

    /// <summary>How many heads from h on, inside unit u's four (4u..4u+3), share h's K/V group.</summary>
    internal static int UnitRun(int u, int h, int heads, int group)
    {
        int m = 1;
        while (m < 4 - (h - 4 * u) && h + m < heads && (h + m) / group == h / group) m++;
        return m;
    }

    struct HeadsJob
    {
        public float* Q, K, V, Out, Scores;
        public int* Flat, Own, UnitHead, UnitHeads, UnitPos, Counts;
        public int OwnCount, Group, HeadDim, KvDim, Stride, BlocksPerHead;
        public float Scale;
    }

    /// <summary>One unit: m (1-4) heads of one K/V head over the same positions.</summary>
    static void Unit(void* ctx, int u)
    {
        var j = (HeadsJob*)ctx;
        int h0 = j->UnitHead[u], m = j->UnitHeads[u], hd = j->HeadDim, kvHead = h0 / j->Group, count = j->Counts[h0], n = count + j->OwnCount;
        float* k = j->K + (long)kvHead * j->BlocksPerHead * hd * B;
        float* sc = j->Scores + (long)h0 * j->Stride;
        ScoreHeads(j->Q + h0 * hd, m, k, hd, j->Flat + j->UnitPos[u], count, sc, j->Stride, j->Scale);
        ScoreHeads(j->Q + h0 * hd, m, k, hd, j->Own, j->OwnCount, sc + count, j->Stride, j->Scale);
        Span<float> inv = stackalloc float[4];
        for (int i = 0; i < m; i++) inv[i] = 1f / Ops.ExpMinusMax(new Span<float>(sc + i * j->Stride, n));
        float* vHead = j->V + kvHead * hd;
        int* flat = j->Flat + j->UnitPos[u];
        int d0 = 0;
        // 64 values of V at a time: each selected row read once for all m heads (16 accumulators).
        for (; d0 + 4 * B <= hd; d0 += 4 * B)
            Weighted64(vHead + d0, j->KvDim, flat, count, j->Own, n, sc, j->Stride, m, j->Out + h0 * hd + d0, hd, inv);
        for (; d0 < hd; d0 += B)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int i = 0; i < n; i++)
            {
                int p = i < count ? j->Flat[j->UnitPos[u] + i] : j->Own[i - count];
                var row = Vector512.Load(vHead + (long)p * j->KvDim + d0);
                a0 = Fma(Vector512.Create(sc[i]), row, a0);
                if (m > 1) a1 = Fma(Vector512.Create(sc[j->Stride + i]), row, a1);
                if (m > 2) a2 = Fma(Vector512.Create(sc[2 * j->Stride + i]), row, a2);
                if (m > 3) a3 = Fma(Vector512.Create(sc[3 * j->Stride + i]), row, a3);
            }
            float* o = j->Out + h0 * hd + d0;
            (a0 * inv[0]).Store(o);
            if (m > 1) (a1 * inv[1]).Store(o + hd);
            if (m > 2) (a2 * inv[2]).Store(o + 2 * hd);
            if (m > 3) (a3 * inv[3]).Store(o + 3 * hd);
        }
    }

    /// <summary>o[h] (64 floats, heads headDim apart) = inv[h] Σ_i sc[h·stride + i] V(p_i)[0..64) for m (1-4) heads, p_i from
    /// flat (count) then own. <paramref name="prefetch"/>: fetch the rows a few positions ahead (off where the caller has).</summary>
    internal static void Weighted64(float* v, int kvd, int* flat, int count, int* own, int n, float* sc, int stride, int m, float* o, int headDim, Span<float> inv, bool prefetch = true)
    {
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default,
            a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        for (int i = 0; i < n; i++)
        {
            if (prefetch && i + Ahead < n)
            {
                // Scattered selections: fetch the row a few positions ahead (four cache lines).
                byte* next = (byte*)(v + (long)(i + Ahead < count ? flat[i + Ahead] : own[i + Ahead - count]) * kvd);
                Sse.Prefetch0(next); Sse.Prefetch0(next + 64); Sse.Prefetch0(next + 128); Sse.Prefetch0(next + 192);
            }
            float* row = v + (long)(i < count ? flat[i] : own[i - count]) * kvd;
            Vector512<float> r0 = Vector512.Load(row), r1 = Vector512.Load(row + B), r2 = Vector512.Load(row + 2 * B), r3 = Vector512.Load(row + 3 * B);
            var w = Vector512.Create(sc[i]);
            // Explicit FMAs: the JIT does not contract a += w * r (a multiply and an add each).
            a00 = Fma(w, r0, a00); a01 = Fma(w, r1, a01); a02 = Fma(w, r2, a02); a03 = Fma(w, r3, a03);
            if (m > 1) { w = Vector512.Create(sc[stride + i]); a10 = Fma(w, r0, a10); a11 = Fma(w, r1, a11); a12 = Fma(w, r2, a12); a13 = Fma(w, r3, a13); }
            if (m > 2) { w = Vector512.Create(sc[2 * stride + i]); a20 = Fma(w, r0, a20); a21 = Fma(w, r1, a21); a22 = Fma(w, r2, a22); a23 = Fma(w, r3, a23); }
            if (m > 3) { w = Vector512.Create(sc[3 * stride + i]); a30 = Fma(w, r0, a30); a31 = Fma(w, r1, a31); a32 = Fma(w, r2, a32); a33 = Fma(w, r3, a33); }
        }
        Store4(o, inv[0], a00, a01, a02, a03);
        if (m > 1) Store4(o + headDim, inv[1], a10, a11, a12, a13);
        if (m > 2) Store4(o + 2 * headDim, inv[2], a20, a21, a22, a23);
        if (m > 3) Store4(o + 3 * headDim, inv[3], a30, a31, a32, a33);
    }

    /// <summary>a·b + c in one instruction.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);

    static void Store4(float* o, float s, Vector512<float> x0, Vector512<float> x1, Vector512<float> x2, Vector512<float> x3)
    {
        var v = Vector512.Create(s);
        (x0 * v).Store(o); (x1 * v).Store(o + B); (x2 * v).Store(o + 2 * B); (x3 * v).Store(o + 3 * B);
    }

    /// <summary>Scores of m (1-4) heads (queries q, q + headDim, ...) for four K rows r0..r3 into dst[h·stride + 0..3],
    /// all in registers: per row, the heads' 16-lane partial products fold into one vector (quarter h: head h's four
    /// partials, <see cref="FoldHeads"/>); the four rows' vectors fold into quarter h = head h's four scores, in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Score4(float* q, int m, float* r0, float* r1, float* r2, float* r3, int headDim, float* dst, int stride, Vector512<float> scale)
    {
        StoreRows(FoldHeads(q, m, r0, headDim), FoldHeads(q, m, r1, headDim), FoldHeads(q, m, r2, headDim), FoldHeads(q, m, r3, headDim), m, dst, stride, scale);
    }

    /// <summary>Four rows' folded vectors (<see cref="Quarters"/>: quarter h = head h's partials) into dst[h·stride + 0..3]
    /// for m heads, times scale: quarter h of the result is head h's four scores, in row order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void StoreRows(Vector512<float> u0, Vector512<float> u1, Vector512<float> u2, Vector512<float> u3, int m, float* dst, long stride, Vector512<float> scale)
    {
        var s0 = Avx512F.Shuffle(u0, u1, 0x88) + Avx512F.Shuffle(u0, u1, 0xDD);   // quarter h: [u0 halves, u1 halves]
        var s1 = Avx512F.Shuffle(u2, u3, 0x88) + Avx512F.Shuffle(u2, u3, 0xDD);
        var s = (Avx512F.Shuffle(s0, s1, 0x88) + Avx512F.Shuffle(s0, s1, 0xDD)) * scale;   // quarter h: head h's four scores
        Avx512F.ExtractVector128(s, 0).Store(dst);
        if (m > 1) Avx512F.ExtractVector128(s, 1).Store(dst + stride);
        if (m > 2) Avx512F.ExtractVector128(s, 2).Store(dst + 2 * stride);
        if (m > 3) Avx512F.ExtractVector128(s, 3).Store(dst + 3 * stride);
    }

    /// <summary>One row against m (1-4) heads: quarter h (lanes 4h..4h+3) holds four partial sums of head h's dot product
    /// (128-bit quarters folded across the heads' vectors: halves, then quarters).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> FoldHeads(float* q, int m, float* row, int headDim)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int d = 0; d < headDim; d += B)
        {
            var r = Vector512.Load(row + d);
            a0 = Fma(Vector512.Load(q + d), r, a0);
            if (m > 1) a1 = Fma(Vector512.Load(q + headDim + d), r, a1);
            if (m > 2) a2 = Fma(Vector512.Load(q + 2 * headDim + d), r, a2);
            if (m > 3) a3 = Fma(Vector512.Load(q + 3 * headDim + d), r, a3);
        }
        return Quarters(a0, a1, a2, a3);
    }

    /// <summary>Four heads' 16-lane partial sums folded into one vector: quarter h (lanes 4h..4h+3) holds four partial sums
    /// of a_h (halves, then quarters).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Quarters(Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3)
    {
        var w0 = Avx512F.Shuffle4x128(a0, a1, 0x44) + Avx512F.Shuffle4x128(a0, a1, 0xEE);   // quarters 0-1: a0, 2-3: a1
        var w1 = Avx512F.Shuffle4x128(a2, a3, 0x44) + Avx512F.Shuffle4x128(a2, a3, 0xEE);
        return Avx512F.Shuffle4x128(w0, w1, 0x88) + Avx512F.Shuffle4x128(w0, w1, 0xDD);
    }

    /// <summary>Scores of m heads (queries q, q + headDim, ...) over count positions, each K block row loaded once for all m.</summary>
    internal static void ScoreHeads(float* q, int m, float* k, int headDim, int* pos, int count, float* dst, int stride, float scale)
    {
        float* lanes = stackalloc float[4 * B];
        int i = 0;
        while (i < count)
        {
            int block = pos[i] / B, e = i + 1;
            while (e < count && pos[e] / B == block) e++;
            float* kb = k + (long)block * headDim * B;
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int d = 0; d < headDim; d++)
            {
                var row = Vector512.Load(kb + d * B);
                a0 = Fma(Vector512.Create(q[d]), row, a0);
                if (m > 1) a1 = Fma(Vector512.Create(q[headDim + d]), row, a1);
                if (m > 2) a2 = Fma(Vector512.Create(q[2 * headDim + d]), row, a2);
                if (m > 3) a3 = Fma(Vector512.Create(q[3 * headDim + d]), row, a3);
            }
            if (e - i == B && pos[i] == block * B && pos[e - 1] == block * B + B - 1)
            {
                // A whole block in order (pages, windows, the full prefix): the scores are the lanes.
                (a0 * scale).Store(dst + i);
                if (m > 1) (a1 * scale).Store(dst + stride + i);
                if (m > 2) (a2 * scale).Store(dst + 2 * stride + i);
                if (m > 3) (a3 * scale).Store(dst + 3 * stride + i);
                i = e;
                continue;
            }
            (a0 * scale).Store(lanes);
            if (m > 1) (a1 * scale).Store(lanes + B);
            if (m > 2) (a2 * scale).Store(lanes + 2 * B);
            if (m > 3) (a3 * scale).Store(lanes + 3 * B);
            for (; i < e; i++)
                for (int h = 0; h < m; h++) dst[h * stride + i] = lanes[h * B + pos[i] % B];
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
                a0 = Fma(Vector512.Create(q[d]), Vector512.Load(kb + d * B), a0);
                a1 = Fma(Vector512.Create(q[d + 1]), Vector512.Load(kb + (d + 1) * B), a1);
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

    /// <summary>The scalar reference of <see cref="Attend"/> (with <paramref name="firstKeyRows"/>, the keys of
    /// <paramref name="first"/> come from those position-major rows, row p at p × kvHeads × headDim, as V).</summary>
    public static void AttendReference(ReadOnlySpan<float> q, ReadOnlySpan<float> kBlocks, int capacity, ReadOnlySpan<float> v, int kvHeads, int headDim,
        int kvHead, ReadOnlySpan<int> first, ReadOnlySpan<int> second, Span<float> scores, Span<float> output, ReadOnlySpan<float> firstKeyRows = default)
    {
        int n = first.Length + second.Length, kvd = kvHeads * headDim;
        if (n == 0) throw new ArgumentException("no positions to attend");
        float scale = 1f / MathF.Sqrt(headDim), max = float.NegativeInfinity;
        for (int i = 0; i < n; i++)
        {
            int p = i < first.Length ? first[i] : second[i - first.Length];
            long at = BlockedAttention.Index(capacity, headDim, kvHead, p, 0);
            float s = 0;
            if (i < first.Length && !firstKeyRows.IsEmpty)
                for (int d = 0; d < headDim; d++) s += q[d] * firstKeyRows[p * kvd + kvHead * headDim + d];
            else
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
