using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static Pare.Kernels.SelectedAttention;

namespace Pare.Kernels;

/// <summary>
/// Attention of every query head of one token over one shared list of scattered prefix positions (TokenSelect), the keys
/// read from a position-major copy of K (row p at p × kvHeads × headDim, as V) instead of the blocked cache, where a
/// lone position costs its whole 16-position block. Tiles of positions instead of heads: each tile reads its positions'
/// whole K row (every K/V head) and later their whole V row while the rows' pages and lines are hot, so a scattered
/// position costs two 2 KB runs (at 8 K/V heads) rather than sixteen scattered 256-byte pieces. One parallel pass: each
/// tile scores its positions, takes each head's exponentials against the tile's own maximum and sums its weighted V rows;
/// the tiles' partial sums are then rescaled to the common maximum and added (as split-K "flash decoding").
/// <see cref="SelectedAttention.AttendReference"/> per head is the reference it is tested against.
/// </summary>
public static unsafe class RowsAttention
{
    const int B = BlockedAttention.Block, Tile = 128;
    /// <summary>Positions ahead whose rows are started while a tile is scored (more than a DRAM latency's worth of work).</summary>
    const int Ahead = 8;

    /// <summary>
    /// output[h] = Σ_p softmax_p(q_h·K(p)/√headDim) V(p) over <paramref name="prefix"/> (keys from <paramref name="keyRows"/>)
    /// then <paramref name="own"/> (the token's chunk or tree ancestors: keys from the blocked cache), for every head h.
    /// </summary>
    public static void AttendShared(ReadOnlySpan<float> q, int heads, int kvHeads, int headDim, ReadOnlySpan<float> keyRows, ReadOnlySpan<float> kBlocks,
        int capacity, ReadOnlySpan<float> v, ReadOnlySpan<int> prefix, ReadOnlySpan<int> own, Span<float> output, int threads)
    {
        int kvd = kvHeads * headDim, n = prefix.Length + own.Length, group = heads / kvHeads;
        if (n == 0) throw new ArgumentException("no positions to attend");
        if (heads % kvHeads != 0 || q.Length < heads * headDim || output.Length < heads * headDim) throw new ArgumentException("q, output or heads do not match");
        if (kBlocks.Length < BlockedAttention.CacheFloats(capacity, kvHeads, headDim)) throw new ArgumentException("the K cache is smaller than its capacity");
        foreach (int p in prefix)
            if ((uint)p >= (uint)capacity || (long)(p + 1) * kvd > Math.Min(keyRows.Length, v.Length)) throw new ArgumentOutOfRangeException(nameof(prefix), $"position {p} outside the cache");
        foreach (int p in own)
            if ((uint)p >= (uint)capacity || (long)(p + 1) * kvd > v.Length) throw new ArgumentOutOfRangeException(nameof(own), $"position {p} outside the cache");
        if (!Vector512.IsHardwareAccelerated || !Avx512F.IsSupported || headDim % (4 * B) != 0)
        {
            var scratch = new float[n];
            for (int h = 0; h < heads; h++)
                SelectedAttention.AttendReference(q.Slice(h * headDim, headDim), kBlocks, capacity, v, kvHeads, headDim, h / group, prefix, own, scratch,
                    output.Slice(h * headDim, headDim), keyRows);
            return;
        }
        int prefixTiles = (prefix.Length + Tile - 1) / Tile, tiles = prefixTiles + (own.IsEmpty ? 0 : 1);
        var scores = ArrayPool<float>.Shared.Rent(heads * n);
        var partial = ArrayPool<float>.Shared.Rent(tiles * heads * (headDim + 2));   // per tile: outputs, then each head's max and sum
        try
        {
            fixed (float* pq = q, pr = keyRows, pk = kBlocks, pv = v, po = output, ps = scores, pp = partial)
            fixed (int* pf = prefix, pw = own)
            {
                var job = new Job
                {
                    Q = pq, Rows = pr, K = pk, V = pv, Scores = ps, Partial = pp, Prefix = pf, Own = pw, PrefixCount = prefix.Length, OwnCount = own.Length,
                    N = n, Heads = heads, Group = group, KvHeads = kvHeads, HeadDim = headDim, PrefixTiles = prefixTiles, BlocksPerHead = (capacity + B - 1) / B,
                    Scale = 1f / MathF.Sqrt(headDim),
                };
                KernelThreadPool.Shared.Run(&TileUnit, &job, tiles, (long)heads * n * headDim < 1 << 14 ? 1 : threads);
                // The tiles' partial outputs and sums, each rescaled from its tile's maximum to the common one.
                int stride = heads * (headDim + 2);
                for (int h = 0; h < heads; h++)
                {
                    float max = float.NegativeInfinity, sum = 0;
                    for (int i = 0; i < tiles; i++) max = Math.Max(max, partial[i * stride + heads * headDim + h]);
                    var o = output.Slice(h * headDim, headDim);
                    o.Clear();
                    for (int i = 0; i < tiles; i++)
                    {
                        float w = MathF.Exp(partial[i * stride + heads * headDim + h] - max);
                        sum += w * partial[i * stride + heads * (headDim + 1) + h];
                        Ops.Axpy(w, partial.AsSpan(i * stride + h * headDim, headDim), o);
                    }
                    Ops.Scale(o, 1f / sum);
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scores);
            ArrayPool<float>.Shared.Return(partial);
        }
    }

    struct Job
    {
        public float* Q, Rows, K, V, Scores, Partial;
        public int* Prefix, Own;
        public int PrefixCount, OwnCount, N, Heads, Group, KvHeads, HeadDim, PrefixTiles, BlocksPerHead;
        public float Scale;
    }

    /// <summary>Tile t's positions: prefix[Tile·t..] (rows), or, for the last tile, the own positions (blocks).</summary>
    static (int First, int Count) Span(Job* j, int t) =>
        t < j->PrefixTiles ? (t * Tile, Math.Min(Tile, j->PrefixCount - t * Tile)) : (j->PrefixCount, j->OwnCount);

    /// <summary>One tile: scores, each head's exponentials against the tile's maximum (kept with their sum), weighted V rows.</summary>
    static void TileUnit(void* ctx, int t)
    {
        var j = (Job*)ctx;
        ScoreTile(j, t);
        var (first, count) = Span(j, t);
        float* stats = j->Partial + (long)t * j->Heads * (j->HeadDim + 2) + j->Heads * j->HeadDim;
        for (int h = 0; h < j->Heads; h++)
        {
            var row = new Span<float>(j->Scores + (long)h * j->N + first, count);
            stats[h] = Ops.Max(row);
            stats[j->Heads + h] = Ops.ExpMinusMax(row);
        }
        WeighTile(j, t);
    }

    /// <summary>Every head's scores for one tile, four positions at a time across all K/V heads (a position's whole K row
    /// in one go), the K and V rows eight positions ahead started (<see cref="StartRow"/>).</summary>
    static void ScoreTile(Job* j, int t)
    {
        int hd = j->HeadDim, kvd = j->KvHeads * hd, n = j->N;
        var (first, count) = Span(j, t);
        if (t >= j->PrefixTiles)
        {
            for (int h = 0, m; h < j->Heads; h += m)
            {
                m = GroupRun(h, j->Group);
                float* k = j->K + (long)(h / j->Group) * j->BlocksPerHead * hd * B;
                SelectedAttention.ScoreHeads(j->Q + h * hd, m, k, hd, j->Own, count, j->Scores + (long)h * n + first, n, j->Scale);
            }
            return;
        }
        int* pos = j->Prefix + first;
        var scale = Vector512.Create(j->Scale);
        int i = 0;
        for (; i + 4 <= count; i += 4)
        {
            for (int r = i + Ahead; r < Math.Min(j->PrefixCount - first, i + Ahead + 4); r++)
            {
                StartRow((byte*)(j->Rows + (long)pos[r] * kvd), l1: true);
                StartRow((byte*)(j->V + (long)pos[r] * kvd), l1: false);
            }
            float* r0 = j->Rows + (long)pos[i] * kvd, r1 = j->Rows + (long)pos[i + 1] * kvd, r2 = j->Rows + (long)pos[i + 2] * kvd, r3 = j->Rows + (long)pos[i + 3] * kvd;
            if (j->Group % 4 == 0)
            {
                // Whole fours of heads per K/V head (the 852M shape): no per-head branches.
                for (int h = 0; h < j->Heads; h += 4)
                {
                    int off = h / j->Group * hd;
                    Score16(j->Q + h * hd, r0 + off, r1 + off, r2 + off, r3 + off, hd, j->Scores + (long)h * n + first + i, n, scale);
                }
                continue;
            }
            for (int h = 0, m; h < j->Heads; h += m)
            {
                m = GroupRun(h, j->Group);
                int off = h / j->Group * hd;
                SelectedAttention.Score4(j->Q + h * hd, m, r0 + off, r1 + off, r2 + off, r3 + off, hd, j->Scores + (long)h * n + first + i, n, scale);
            }
        }
        for (; i < count; i++)
        {
            float* row = j->Rows + (long)pos[i] * kvd;
            for (int h = 0; h < j->Heads; h++)
            {
                float* qh = j->Q + h * hd, kh = row + h / j->Group * hd;
                var acc = Vector512<float>.Zero;
                for (int d = 0; d < hd; d += B) acc = SelectedAttention.Fma(Vector512.Load(qh + d), Vector512.Load(kh + d), acc);
                j->Scores[(long)h * n + first + i] = Vector512.Sum(acc) * j->Scale;
            }
        }
    }

    /// <summary>One tile's weighted V rows, per K/V head and up to four of its query heads at a time, into the tile's
    /// partial output (the rows were started while the tile was scored).</summary>
    static void WeighTile(Job* j, int t)
    {
        int hd = j->HeadDim, kvd = j->KvHeads * hd, n = j->N;
        var (first, count) = Span(j, t);
        int* pos = t < j->PrefixTiles ? j->Prefix + first : j->Own;
        Span<float> one = [1f, 1f, 1f, 1f];
        float* o = j->Partial + (long)t * j->Heads * (hd + 2);
        if (j->Group % 4 == 0)
        {
            for (int h = 0; h < j->Heads; h += 4)
                for (int d0 = 0; d0 < hd; d0 += 4 * B)
                    Weigh16(j->V + h / j->Group * hd + d0, kvd, pos, count, j->Scores + (long)h * n + first, n, o + h * hd + d0, hd);
            return;
        }
        for (int h = 0, m; h < j->Heads; h += m)
        {
            m = GroupRun(h, j->Group);
            for (int d0 = 0; d0 < hd; d0 += 4 * B)
                SelectedAttention.Weighted64(j->V + h / j->Group * hd + d0, kvd, pos, count, null, count, j->Scores + (long)h * n + first, n, m, o + h * hd + d0, hd, one, prefetch: false);   // started while scoring
        }
    }

    /// <summary>How many query heads from h on are scored together: up to four, inside h's K/V group.</summary>
    static int GroupRun(int h, int group) => Math.Min(4, group - h % group);

    /// <summary>Four heads' (queries q, q + headDim, ...) scores of four rows r0..r3 into dst[h·stride + 0..3]: sixteen
    /// accumulators in registers, no branch inside, folded by <see cref="SelectedAttention.Quarters"/> and
    /// <see cref="SelectedAttention.StoreRows"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Score16(float* q, float* r0, float* r1, float* r2, float* r3, int headDim, float* dst, long stride, Vector512<float> scale)
    {
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default,
            a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        for (int d = 0; d < headDim; d += B)
        {
            Vector512<float> q0 = Vector512.Load(q + d), q1 = Vector512.Load(q + headDim + d), q2 = Vector512.Load(q + 2 * headDim + d), q3 = Vector512.Load(q + 3 * headDim + d);
            var k = Vector512.Load(r0 + d);
            a00 = Fma(q0, k, a00); a01 = Fma(q1, k, a01); a02 = Fma(q2, k, a02); a03 = Fma(q3, k, a03);
            k = Vector512.Load(r1 + d);
            a10 = Fma(q0, k, a10); a11 = Fma(q1, k, a11); a12 = Fma(q2, k, a12); a13 = Fma(q3, k, a13);
            k = Vector512.Load(r2 + d);
            a20 = Fma(q0, k, a20); a21 = Fma(q1, k, a21); a22 = Fma(q2, k, a22); a23 = Fma(q3, k, a23);
            k = Vector512.Load(r3 + d);
            a30 = Fma(q0, k, a30); a31 = Fma(q1, k, a31); a32 = Fma(q2, k, a32); a33 = Fma(q3, k, a33);
        }
        StoreRows(Quarters(a00, a01, a02, a03), Quarters(a10, a11, a12, a13), Quarters(a20, a21, a22, a23), Quarters(a30, a31, a32, a33), 4, dst, stride, scale);
    }

    /// <summary>o[h][0..64) (heads headDim apart) = Σ_i sc[h·stride + i] V(pos_i)[0..64) for four heads, unscaled: the
    /// weighted V rows of a tile, sixteen accumulators, no branch inside.</summary>
    static void Weigh16(float* v, int kvd, int* pos, int count, float* sc, long stride, float* o, int headDim)
    {
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default,
            a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        for (int i = 0; i < count; i++)
        {
            float* row = v + (long)pos[i] * kvd;
            Vector512<float> r0 = Vector512.Load(row), r1 = Vector512.Load(row + B), r2 = Vector512.Load(row + 2 * B), r3 = Vector512.Load(row + 3 * B);
            var w = Vector512.Create(sc[i]);
            a00 = Fma(w, r0, a00); a01 = Fma(w, r1, a01); a02 = Fma(w, r2, a02); a03 = Fma(w, r3, a03);
            w = Vector512.Create(sc[stride + i]);
            a10 = Fma(w, r0, a10); a11 = Fma(w, r1, a11); a12 = Fma(w, r2, a12); a13 = Fma(w, r3, a13);
            w = Vector512.Create(sc[2 * stride + i]);
            a20 = Fma(w, r0, a20); a21 = Fma(w, r1, a21); a22 = Fma(w, r2, a22); a23 = Fma(w, r3, a23);
            w = Vector512.Create(sc[3 * stride + i]);
            a30 = Fma(w, r0, a30); a31 = Fma(w, r1, a31); a32 = Fma(w, r2, a32); a33 = Fma(w, r3, a33);
        }
        a00.Store(o); a01.Store(o + B); a02.Store(o + 2 * B); a03.Store(o + 3 * B);
        a10.Store(o + headDim); a11.Store(o + headDim + B); a12.Store(o + headDim + 2 * B); a13.Store(o + headDim + 3 * B);
        a20.Store(o + 2 * headDim); a21.Store(o + 2 * headDim + B); a22.Store(o + 2 * headDim + 2 * B); a23.Store(o + 2 * headDim + 3 * B);
        a30.Store(o + 3 * headDim); a31.Store(o + 3 * headDim + B); a32.Store(o + 3 * headDim + 2 * B); a33.Store(o + 3 * headDim + 3 * B);
    }

    /// <summary>The first four cache lines of a selected row (K into L1, V into L2): the hardware's stream prefetcher
    /// fetches the rest of the row once it has seen them. Fetching every line by software cost more than it saved
    /// (instructions, and each tile's V rows fetched at once stalled the core), and so did no software prefetch.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StartRow(byte* p, bool l1)
    {
        if (l1) { Sse.Prefetch0(p); Sse.Prefetch0(p + 64); Sse.Prefetch0(p + 128); Sse.Prefetch0(p + 192); }
        else { Sse.Prefetch1(p); Sse.Prefetch1(p + 64); Sse.Prefetch1(p + 128); Sse.Prefetch1(p + 192); }
    }
}
