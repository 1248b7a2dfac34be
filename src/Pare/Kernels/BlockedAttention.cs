using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pare.Kernels;

/// <summary>
/// Causal grouped-query attention over a K cache kept in blocks of 16 positions, transposed inside a block:
/// K[kvHead][block][d][16 positions]. A row of 16 scores is then a sum over d of (one query value, broadcast) x (one
/// 16-position vector), with no horizontal sums; and every query that shares the K/V head (the group's heads, for every
/// new token) reuses each loaded K vector, so a token tree of n tokens reads K once instead of n times.
/// The session's inference path uses this layout; <see cref="Attention"/> keeps the position-major one (pruning,
/// tests). V stays position-major: its weighted sum is already a broadcast x vector product.
/// </summary>
public static unsafe class BlockedAttention
{
    /// <summary>Positions per K block (one AVX-512 vector of floats).</summary>
    public const int Block = 16;

    /// <summary>Floats a blocked K cache needs for <paramref name="positions"/> positions.</summary>
    public static long CacheFloats(int positions, int kvHeads, int headDim) => (long)kvHeads * Blocks(positions) * headDim * Block;

    static int Blocks(int positions) => (positions + Block - 1) / Block;

    /// <summary>Index of K(kvHead, position, d) in a blocked cache sized for <paramref name="capacity"/> positions.</summary>
    internal static long Index(int capacity, int headDim, int kvHead, int position, int d) =>
        (((long)kvHead * Blocks(capacity) + position / Block) * headDim + d) * Block + position % Block;

    /// <summary>Stores k rows (n, kvHeads * headDim), position-major, at positions pos0.. of the blocked cache.</summary>
    public static void WriteK(ReadOnlySpan<float> k, int n, int kvHeads, int headDim, Span<float> kBlocks, int capacity, int pos0)
    {
        if (pos0 < 0 || pos0 + n > capacity) throw new ArgumentOutOfRangeException(nameof(pos0), "positions past the cache");
        if (k.Length < n * kvHeads * headDim || kBlocks.Length < CacheFloats(capacity, kvHeads, headDim)) throw new ArgumentException("k or the cache is too short");
        for (int t = 0; t < n; t++)
            for (int h = 0; h < kvHeads; h++)
            {
                var row = k.Slice((t * kvHeads + h) * headDim, headDim);
                long at = Index(capacity, headDim, h, pos0 + t, 0);
                for (int d = 0; d < headDim; d++) kBlocks[(int)(at + d * Block)] = row[d];
            }
    }

    /// <summary>
    /// Copies positions [from, to) of every head out of the blocked cache into position-major rows (row p at
    /// p × kvHeads × headDim, as V): <see cref="WriteK"/>'s inverse, for kernels that gather single positions.
    /// </summary>
    public static void ReadK(ReadOnlySpan<float> kBlocks, int capacity, int kvHeads, int headDim, int from, int to, Span<float> rows)
    {
        if (from < 0 || to > capacity || from > to) throw new ArgumentOutOfRangeException(nameof(from), "positions past the cache");
        if (rows.Length < (long)to * kvHeads * headDim || kBlocks.Length < CacheFloats(capacity, kvHeads, headDim)) throw new ArgumentException("rows or the cache is too short");
        for (int h = 0; h < kvHeads; h++)
            for (int p = from; p < to; p++)
            {
                var src = kBlocks[(int)Index(capacity, headDim, h, p, 0)..];
                var dst = rows.Slice((p * kvHeads + h) * headDim, headDim);
                for (int d = 0; d < headDim; d++) dst[d] = src[d * Block];
            }
    }

    /// <summary>Copies every head's K at position <paramref name="from"/> to position <paramref name="to"/> (tree compaction).</summary>
    public static void MoveK(Span<float> kBlocks, int capacity, int kvHeads, int headDim, int from, int to)
    {
        for (int h = 0; h < kvHeads; h++)
        {
            long src = Index(capacity, headDim, h, from, 0), dst = Index(capacity, headDim, h, to, 0);
            for (int d = 0; d < headDim; d++) kBlocks[(int)(dst + d * Block)] = kBlocks[(int)(src + d * Block)];
        }
    }

    struct Job
    {
        public float* Q, K, V, Out;
        public void* Kc, Vc;   // F16 / Q8_0 caches (K blocked, V position-major), read by the fused kernels
        public float* KScales; // Q8_0 K scales: [kvHead][block][group of 32][16 positions]
        public int VRowBytes;  // Q8_0 V: bytes per position (kvDim / 32 blocks of 34 bytes)
        public int* Parents; // null: a chain; else the tree's parent of each node (-1 at the root), Offset + N of them
        // Offset: tree nodes already in the cache (at Pos0..Pos0 + Offset - 1); new token t is tree node Offset + t.
        public int N, Heads, Group, HeadDim, QDim, KvDim, Pos0, Offset, BlocksPerHead, TilesPerHead;
        public float Scale;
    }

    /// <summary>Queries per tile: a tile's queries share every K and V vector loaded.</summary>
    const int TileQueries = 8;

    /// <summary>
    /// As <see cref="Attention.CausalGqa(ReadOnlySpan{float}, int, int, int, int, ReadOnlySpan{float}, ReadOnlySpan{float}, int, Span{float}, int, ReadOnlySpan{int})"/>,
    /// with K in the blocked layout (<see cref="WriteK"/>) of a cache sized for <paramref name="capacity"/> positions;
    /// <paramref name="portable"/> forces the reference path (tests compare the two).
    /// </summary>
    public static void CausalGqa(ReadOnlySpan<float> q, int n, int heads, int kvHeads, int headDim,
        ReadOnlySpan<float> kBlocks, int capacity, ReadOnlySpan<float> vCache, int pos0, Span<float> output, int threads,
        ReadOnlySpan<int> parents = default, bool portable = false, int treeOffset = 0)
    {
        if (treeOffset < 0 || (treeOffset > 0 && parents.IsEmpty)) throw new ArgumentException("a tree offset needs the tree's parents", nameof(treeOffset));
        if (!parents.IsEmpty && parents.Length != treeOffset + n) throw new ArgumentException("parents needs one entry per tree node (the treeOffset evaluated ones and the new ones)", nameof(parents));
        if (heads % kvHeads != 0) throw new ArgumentException("heads must be a multiple of kvHeads", nameof(kvHeads));
        int qd = heads * headDim, kvd = kvHeads * headDim;
        if (q.Length < n * qd || output.Length < n * qd) throw new ArgumentException("q and output need n * heads * headDim values");
        int end = pos0 + treeOffset + n;
        if (end > capacity || kBlocks.Length < CacheFloats(capacity, kvHeads, headDim) || vCache.Length < (long)end * kvd)
            throw new ArgumentException("the caches must hold pos0 + treeOffset + n positions");
        int group = heads / kvHeads, tiles = (n * group + TileQueries - 1) / TileQueries;
        fixed (float* pq = q, pk = kBlocks, pv = vCache, po = output)
        fixed (int* pp = parents)
        {
            var job = new Job
            {
                Q = pq, K = pk, V = pv, Out = po, Parents = parents.IsEmpty ? null : pp, N = n, Heads = heads, Group = group,
                HeadDim = headDim, QDim = qd, KvDim = kvd, Pos0 = pos0, Offset = treeOffset, BlocksPerHead = Blocks(capacity), TilesPerHead = tiles,
                Scale = 1f / MathF.Sqrt(headDim),
            };
            bool fast = !portable && Vector512.IsHardwareAccelerated && headDim % Block == 0;
            KernelThreadPool.Shared.Run(fast ? &Tile<F32Kv> : &TilePortable, &job, kvHeads * tiles, Threads(n, heads, pos0 + treeOffset, headDim, threads));
        }
    }

    static int Threads(int n, int heads, int pos0, int headDim, int threads)
    {
        // Decode over a short cache is about a microsecond of work: not worth waking a second thread. Past that, the
        // K/V reads (from L3 when the weights have streamed through L2) go faster from two cores.
        long work = (long)n * heads * (pos0 + n) * headDim;
        return work < 1 << 14 ? 1 : threads;
    }

    /// <summary>
    /// Whether <see cref="CausalGqaF16"/> and <see cref="CausalGqaQ8"/> can run on this machine for this head width
    /// (AVX-512, head width a multiple of 32); otherwise decode the cache to floats and call the F32 kernel.
    /// </summary>
    public static bool FusedSupported(int headDim) => Vector512.IsHardwareAccelerated && Avx512F.IsSupported && headDim % 32 == 0;

    /// <summary>
    /// As <see cref="CausalGqa"/>, over an F16 cache (K blocked as <see cref="KvQuant.WriteKF16"/> stores it, V
    /// position-major halves), converting each 16-value vector to floats as it is loaded: the kernel reads half the
    /// bytes of the F32 cache and computes exactly what the F32 kernel computes over the decoded cache.
    /// </summary>
    public static void CausalGqaF16(ReadOnlySpan<float> q, int n, int heads, int kvHeads, int headDim,
        ReadOnlySpan<ushort> kBlocks, int capacity, ReadOnlySpan<ushort> vCache, int pos0, Span<float> output, int threads,
        ReadOnlySpan<int> parents = default)
    {
        Check(q, n, heads, kvHeads, headDim, capacity, pos0, output, parents);
        int kvd = kvHeads * headDim;
        if (kBlocks.Length < CacheFloats(capacity, kvHeads, headDim) || vCache.Length < (long)(pos0 + n) * kvd)
            throw new ArgumentException("the caches must hold pos0 + n positions");
        fixed (ushort* pk = kBlocks, pv = vCache)
            RunFused(q, n, heads, kvHeads, headDim, capacity, pos0, output, threads, parents, pk, pv, null, 0, &Tile<F16Kv>);
    }

    /// <summary>
    /// As <see cref="CausalGqa"/>, over a Q8_0 cache (K: int8 in the blocked layout with per-(position, group of 32)
    /// scales, as <see cref="KvQuant.WriteKQ8"/> stores them; V: Q8_0 rows, as <see cref="KvQuant.WriteQ8"/>), each
    /// vector of 16 int8 values widened and scaled as it is loaded: about a quarter of the F32 cache's bytes read, the
    /// same results as the F32 kernel over the decoded cache.
    /// </summary>
    public static void CausalGqaQ8(ReadOnlySpan<float> q, int n, int heads, int kvHeads, int headDim,
        ReadOnlySpan<sbyte> kBlocks, ReadOnlySpan<float> kScales, int capacity, ReadOnlySpan<byte> vRows, int pos0,
        Span<float> output, int threads, ReadOnlySpan<int> parents = default)
    {
        Check(q, n, heads, kvHeads, headDim, capacity, pos0, output, parents);
        int rowBytes = KvQuant.Q8RowBytes(kvHeads * headDim);
        if (kBlocks.Length < CacheFloats(capacity, kvHeads, headDim) || kScales.Length < KvQuant.KScaleCount(capacity, kvHeads, headDim)
            || vRows.Length < (long)(pos0 + n) * rowBytes)
            throw new ArgumentException("the caches must hold pos0 + n positions");
        fixed (sbyte* pk = kBlocks)
        fixed (float* ps = kScales)
        fixed (byte* pv = vRows)
            RunFused(q, n, heads, kvHeads, headDim, capacity, pos0, output, threads, parents, pk, pv, ps, rowBytes, &Tile<Q8Kv>);
    }

    static void Check(ReadOnlySpan<float> q, int n, int heads, int kvHeads, int headDim, int capacity, int pos0, Span<float> output, ReadOnlySpan<int> parents)
    {
        if (!FusedSupported(headDim)) throw new PlatformNotSupportedException("the fused F16/Q8_0 attention needs AVX-512 and a head width that is a multiple of 32");
        if (!parents.IsEmpty && parents.Length != n) throw new ArgumentException("parents needs one entry per new token", nameof(parents));
        if (heads % kvHeads != 0) throw new ArgumentException("heads must be a multiple of kvHeads", nameof(kvHeads));
        if (q.Length < n * heads * headDim || output.Length < n * heads * headDim) throw new ArgumentException("q and output need n * heads * headDim values");
        if (pos0 < 0 || pos0 + n > capacity) throw new ArgumentException("the caches must hold pos0 + n positions");
    }

    static void RunFused(ReadOnlySpan<float> q, int n, int heads, int kvHeads, int headDim, int capacity, int pos0, Span<float> output,
        int threads, ReadOnlySpan<int> parents, void* kc, void* vc, float* kScales, int vRowBytes, delegate*<void*, int, void> tile)
    {
        int group = heads / kvHeads, tiles = (n * group + TileQueries - 1) / TileQueries;
        fixed (float* pq = q, po = output)
        fixed (int* pp = parents)
        {
            var job = new Job
            {
                Q = pq, Kc = kc, Vc = vc, KScales = kScales, VRowBytes = vRowBytes, Out = po, Parents = parents.IsEmpty ? null : pp,
                N = n, Heads = heads, Group = group, HeadDim = headDim, QDim = heads * headDim, KvDim = kvHeads * headDim, Pos0 = pos0,
                BlocksPerHead = Blocks(capacity), TilesPerHead = tiles, Scale = 1f / MathF.Sqrt(headDim),
            };
            KernelThreadPool.Shared.Run(tile, &job, kvHeads * tiles, Threads(n, heads, pos0, headDim, threads));
        }
    }

    /// <summary>How the fast kernel loads 16 cached values as floats: K at (global block, d), V at (position, column).</summary>
    interface IKv
    {
        static abstract Vector512<float> K(in Job j, long block, int d);
        static abstract Vector512<float> V(in Job j, long position, int column);
    }

    struct F32Kv : IKv
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> K(in Job j, long block, int d) => Vector512.Load(j.K + (block * j.HeadDim + d) * Block);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> V(in Job j, long position, int column) => Vector512.Load(j.V + position * j.KvDim + column);
    }

    struct F16Kv : IKv
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> K(in Job j, long block, int d) => Fp16.ToFloatExact16((ushort*)j.Kc + (block * j.HeadDim + d) * Block);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> V(in Job j, long position, int column) => Fp16.ToFloatExact16((ushort*)j.Vc + position * j.KvDim + column);
    }

    struct Q8Kv : IKv
    {
        // The same products as KvQuant.ReadKQ8 / ReadQ8 form (int8 as float times the scale), so the results match the
        // F32 kernel over the decoded cache bit for bit. V's fp16 scale goes through the branch-free ToFloatFast (exact
        // but for an infinite scale, which only |v| > 8.3e6 makes; the F32 reference then holds inf * 0 = NaN as well).
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> K(in Job j, long block, int d) =>
            Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)j.Kc + (block * j.HeadDim + d) * Block)))
            * Vector512.Load(j.KScales + (block * (j.HeadDim >> 5) + (d >> 5)) * Block);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> V(in Job j, long position, int column)
        {
            byte* blk = (byte*)j.Vc + position * j.VRowBytes + (column >> 5) * 34;
            return Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)blk + 2 + (column & 31))))
                * Vector512.Create(Fp16.ToFloatFast(*(ushort*)blk));
        }
    }

    /// <summary>One K/V head's tile of queries: query i is (token i / group, head kvHead * group + i % group).</summary>
    readonly ref struct TileInfo
    {
        public readonly int KvHead, First, Count, Length, RowStride;

        public TileInfo(in Job j, int index)
        {
            KvHead = index / j.TilesPerHead;
            First = index % j.TilesPerHead * TileQueries;
            Count = Math.Min(TileQueries, j.N * j.Group - First);
            // The tile's last token sees the most positions; earlier ones are masked below.
            Length = j.Pos0 + j.Offset + (First + Count - 1) / j.Group + 1;
            RowStride = Blocks(Length) * Block;
        }
    }

    static float* QueryOf(in Job j, int kvHead, int query) =>
        j.Q + (long)(query / j.Group) * j.QDim + (kvHead * j.Group + query % j.Group) * j.HeadDim;

    static float* OutOf(in Job j, int kvHead, int query) =>
        j.Out + (long)(query / j.Group) * j.QDim + (kvHead * j.Group + query % j.Group) * j.HeadDim;

    /// <summary>Hides what a query's token may not see (later new tokens; in a tree, non-ancestors).</summary>
    static void Mask(in Job j, int query, float* row, int length)
    {
        int t = j.Offset + query / j.Group;
        for (int b = length - j.Pos0 - 1, ancestor = t; b >= 0; b--)
        {
            if (b > t) row[j.Pos0 + b] = float.NegativeInfinity;
            else if (j.Parents == null) break; // a chain sees every earlier token
            else if (b == ancestor) ancestor = j.Parents[b];
            else row[j.Pos0 + b] = float.NegativeInfinity;
        }
    }

    static void Tile<TKv>(void* ctx, int index) where TKv : struct, IKv
    {
        ref readonly Job j = ref *(Job*)ctx;
        var tile = new TileInfo(j, index);
        float* s = ThreadBuffers.Scores(tile.Count * tile.RowStride);
        long kt = (long)tile.KvHead * j.BlocksPerHead;
        float** qs = stackalloc float*[TileQueries];
        float** rows = stackalloc float*[TileQueries];
        for (int i = 0; i < tile.Count; i++)
        {
            qs[i] = QueryOf(j, tile.KvHead, tile.First + i);
            rows[i] = s + (long)i * tile.RowStride;
        }
        int blocks = tile.RowStride / Block;
        // Sub-tiles of 4, 2, 1 queries: each a specialised kernel with that many accumulators per block.
        for (int i = 0; i < tile.Count;)
        {
            int left = tile.Count - i;
            if (left >= 4) { Scores<Q4, TKv>(j, qs + i, kt, blocks, rows + i); i += 4; }
            else if (left >= 2) { Scores<Q2, TKv>(j, qs + i, kt, blocks, rows + i); i += 2; }
            else { Scores<Q1, TKv>(j, qs + i, kt, blocks, rows + i); i += 1; }
        }
        // Softmax without its division: the weighted sums are scaled by 1 / sum instead.
        float* inv = stackalloc float[TileQueries];
        for (int i = 0; i < tile.Count; i++)
        {
            Mask(j, tile.First + i, rows[i], tile.Length);
            inv[i] = 1f / Ops.ExpMinusMax(new Span<float>(rows[i], tile.Length));
        }

        // out = sum_p s[p] v[p]; hidden positions have weight exactly 0.
        float** outs = qs; // the query pointers are no longer needed
        for (int i = 0; i < tile.Count; i++) outs[i] = OutOf(j, tile.KvHead, tile.First + i);
        int v = tile.KvHead * j.HeadDim;
        for (int i = 0; i < tile.Count;)
        {
            int left = tile.Count - i;
            if (left >= 4) { WeightedSum<Q4, TKv>(j, rows + i, inv + i, v, tile.Length, outs + i); i += 4; }
            else if (left >= 2) { WeightedSum<Q2, TKv>(j, rows + i, inv + i, v, tile.Length, outs + i); i += 2; }
            else { WeightedSum<Q1, TKv>(j, rows + i, inv + i, v, tile.Length, outs + i); i += 1; }
        }
    }

    interface IQueries { static abstract int M { get; } }
    struct Q1 : IQueries { public static int M => 1; }
    struct Q2 : IQueries { public static int M => 2; }
    struct Q4 : IQueries { public static int M => 4; }

    /// <summary>
    /// rows[i][16b + l] = scale * q_i · K(position 16b + l) for TQ.M queries and every block b, two blocks per pass:
    /// each broadcast query value feeds two FMAs, and even and odd d accumulate apart so that even one query keeps
    /// four FMA chains in flight.
    /// </summary>
    static void Scores<TQ, TKv>(in Job j, float** qs, long kt, int blocks, float** rows) where TQ : struct, IQueries where TKv : struct, IKv
    {
        float* q0 = qs[0], q1 = qs[TQ.M > 1 ? 1 : 0], q2 = qs[TQ.M > 2 ? 2 : 0], q3 = qs[TQ.M > 2 ? 3 : 0];
        var sc = Vector512.Create(j.Scale);
        int hd = j.HeadDim;
        for (int b = 0; b < blocks; b += 2, kt += 2)
        {
            // A last odd block pairs with itself; its second copy is not stored.
            long k1t = b + 1 < blocks ? kt + 1 : kt;
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
            Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, e0 = default, e1 = default, e2 = default, e3 = default;
            for (int d = 0; d < hd; d += 2)
            {
                var k = TKv.K(j, kt, d);
                var k2 = TKv.K(j, kt, d + 1);
                var l = TKv.K(j, k1t, d);
                var l2 = TKv.K(j, k1t, d + 1);
                Fma2(Vector512.Create(q0[d]), Vector512.Create(q0[d + 1]), k, k2, l, l2, ref a0, ref b0, ref c0, ref e0);
                if (TQ.M > 1) Fma2(Vector512.Create(q1[d]), Vector512.Create(q1[d + 1]), k, k2, l, l2, ref a1, ref b1, ref c1, ref e1);
                if (TQ.M > 2)
                {
                    Fma2(Vector512.Create(q2[d]), Vector512.Create(q2[d + 1]), k, k2, l, l2, ref a2, ref b2, ref c2, ref e2);
                    Fma2(Vector512.Create(q3[d]), Vector512.Create(q3[d + 1]), k, k2, l, l2, ref a3, ref b3, ref c3, ref e3);
                }
            }
            int o = b * Block;
            bool second = b + 1 < blocks;
            ((a0 + b0) * sc).Store(rows[0] + o); if (second) ((c0 + e0) * sc).Store(rows[0] + o + Block);
            if (TQ.M > 1) { ((a1 + b1) * sc).Store(rows[1] + o); if (second) ((c1 + e1) * sc).Store(rows[1] + o + Block); }
            if (TQ.M > 2)
            {
                ((a2 + b2) * sc).Store(rows[2] + o); if (second) ((c2 + e2) * sc).Store(rows[2] + o + Block);
                ((a3 + b3) * sc).Store(rows[3] + o); if (second) ((c3 + e3) * sc).Store(rows[3] + o + Block);
            }
        }
    }

    /// <summary>a += s * x, b += t * y, c += s * u, e += t * w: two broadcast values times two pairs of vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Fma2(Vector512<float> s, Vector512<float> t, Vector512<float> x, Vector512<float> y, Vector512<float> u, Vector512<float> w,
        ref Vector512<float> a, ref Vector512<float> b, ref Vector512<float> c, ref Vector512<float> e)
    {
        a = Vector512.FusedMultiplyAdd(s, x, a); b = Vector512.FusedMultiplyAdd(t, y, b);
        c = Vector512.FusedMultiplyAdd(s, u, c); e = Vector512.FusedMultiplyAdd(t, w, e);
    }

    /// <summary>
    /// outs[i][0..hd) = scale[i] * sum_p rows[i][p] * v[p * kvd + 0..hd) for TQ.M queries, 32 lanes of the head per
    /// pass (each broadcast weight feeds two FMAs); even and odd positions accumulate apart.
    /// </summary>
    static void WeightedSum<TQ, TKv>(in Job j, float** rows, float* scale, int v, int length, float** outs) where TQ : struct, IQueries where TKv : struct, IKv
    {
        int hd = j.HeadDim;
        float* s0 = rows[0], s1 = rows[TQ.M > 1 ? 1 : 0], s2 = rows[TQ.M > 2 ? 2 : 0], s3 = rows[TQ.M > 2 ? 3 : 0];
        for (int c = 0; c < hd; c += 2 * Block)
        {
            // A last odd 16 lanes pair with themselves; the copy is not stored.
            int c2 = c + Block < hd ? c + Block : c;
            int vp = v + c, wp = v + c2;
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
            Vector512<float> d0 = default, d1 = default, d2 = default, d3 = default, e0 = default, e1 = default, e2 = default, e3 = default;
            int p = 0;
            for (; p + 2 <= length; p += 2)
            {
                var x = TKv.V(j, p, vp); var y = TKv.V(j, p + 1, vp);
                var u = TKv.V(j, p, wp); var w = TKv.V(j, p + 1, wp);
                Fma2(Vector512.Create(s0[p]), Vector512.Create(s0[p + 1]), x, y, u, w, ref a0, ref b0, ref d0, ref e0);
                if (TQ.M > 1) Fma2(Vector512.Create(s1[p]), Vector512.Create(s1[p + 1]), x, y, u, w, ref a1, ref b1, ref d1, ref e1);
                if (TQ.M > 2)
                {
                    Fma2(Vector512.Create(s2[p]), Vector512.Create(s2[p + 1]), x, y, u, w, ref a2, ref b2, ref d2, ref e2);
                    Fma2(Vector512.Create(s3[p]), Vector512.Create(s3[p + 1]), x, y, u, w, ref a3, ref b3, ref d3, ref e3);
                }
            }
            if (p < length)
            {
                // An odd last position: its partner's weight is 0.
                var x = TKv.V(j, p, vp); var u = TKv.V(j, p, wp);
                var z = Vector512<float>.Zero;
                Fma2(Vector512.Create(s0[p]), z, x, z, u, z, ref a0, ref b0, ref d0, ref e0);
                if (TQ.M > 1) Fma2(Vector512.Create(s1[p]), z, x, z, u, z, ref a1, ref b1, ref d1, ref e1);
                if (TQ.M > 2)
                {
                    Fma2(Vector512.Create(s2[p]), z, x, z, u, z, ref a2, ref b2, ref d2, ref e2);
                    Fma2(Vector512.Create(s3[p]), z, x, z, u, z, ref a3, ref b3, ref d3, ref e3);
                }
            }
            bool second = c2 != c;
            ((a0 + b0) * scale[0]).Store(outs[0] + c); if (second) ((d0 + e0) * scale[0]).Store(outs[0] + c2);
            if (TQ.M > 1) { ((a1 + b1) * scale[1]).Store(outs[1] + c); if (second) ((d1 + e1) * scale[1]).Store(outs[1] + c2); }
            if (TQ.M > 2)
            {
                ((a2 + b2) * scale[2]).Store(outs[2] + c); if (second) ((d2 + e2) * scale[2]).Store(outs[2] + c2);
                ((a3 + b3) * scale[3]).Store(outs[3] + c); if (second) ((d3 + e3) * scale[3]).Store(outs[3] + c2);
            }
        }
    }

    /// <summary>
    /// The reference path (and the one without AVX-512 or for head sizes that are not a multiple of 16): one query at a
    /// time, scores a block at a time with <see cref="Vector{T}"/>, the weighted sum of V with <see cref="Ops.Axpy"/>.
    /// </summary>
    static void TilePortable(void* ctx, int index)
    {
        ref readonly Job j = ref *(Job*)ctx;
        var tile = new TileInfo(j, index);
        float* s = ThreadBuffers.Scores(tile.RowStride);
        float* kt = j.K + (long)tile.KvHead * j.BlocksPerHead * j.HeadDim * Block;
        int hd = j.HeadDim, w = Vector<float>.Count, blocks = tile.RowStride / Block;
        for (int i = 0; i < tile.Count; i++)
        {
            float* q = QueryOf(j, tile.KvHead, tile.First + i);
            for (int b = 0; b < blocks; b++)
                for (int l = 0; l < Block; l += w)
                {
                    var acc = Vector<float>.Zero;
                    for (int d = 0; d < hd; d++)
                        acc += new Vector<float>(q[d]) * Vector.Load(kt + ((long)b * hd + d) * Block + l);
                    (acc * j.Scale).Store(s + b * Block + l);
                }
            Mask(j, tile.First + i, s, tile.Length);
            Ops.Softmax(new Span<float>(s, tile.Length));
            var o = new Span<float>(OutOf(j, tile.KvHead, tile.First + i), hd);
            o.Clear();
            float* v = j.V + tile.KvHead * hd;
            for (int p = 0; p < tile.Length; p++)
                if (s[p] != 0) Ops.Axpy(s[p], new ReadOnlySpan<float>(v + (long)p * j.KvDim, hd), o);
        }
    }
}
