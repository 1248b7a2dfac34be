using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pare.Kernels;

/// <summary>
/// An int8 copy of a blocked F32 K cache for scoring every cached position (TokenSelect's selection pass): blocks of 16
/// positions as in <see cref="BlockedAttention"/>'s K, one byte per value, channels in fours,
/// K[kvHead][block][d / 4][16 positions][d % 4] (<see cref="Index"/>), each byte k + 128 (0..254: unsigned, the operand
/// AVX-VNNI's vpdpbusd takes), and one scale per (K/V head, position), max|k| / 127 over the head's row. A quarter of
/// F32 K's bytes (plus 4 bytes per row of scales): the pass over every position reads about a quarter. The scores
/// multiply each head's query rounded to int8 (±127) with the keys, four channels per 32-bit lane: with AVX-VNNI one
/// vpdpbusd per 8 positions x 4 channels (multiply, sum of four and accumulate in one instruction), else AVX-512BW
/// vpmaddwd on the keys widened to int16; Σ_d (k + 128)·q = Σ_d k·q + 128·Σ_d q, so each head's sums start from
/// -128·Σ_d q (exact in int32). With 4 bits: values in -7..7 (scale max|k| / 7) stored as k + 8, eight channels of a
/// position per 32-bit lane, K[kvHead][block][d / 8][16 positions][4 bytes], byte c holding channel d0 + c in its low
/// nibble and d0 + 4 + c in its high one: an eighth of F32 K; one AND (and one shift) split a lane into two four-channel
/// operands of the same multiply-adds, the sums starting at -8·Σ_d q.
/// The <c>*Reference</c> methods are the scalar definitions the vector paths are tested against.
/// </summary>
public static unsafe class KeySketch
{
    const int B = BlockedAttention.Block;

    static int Blocks(int capacity) => (capacity + B - 1) / B;

    /// <summary>Index of k(kvHead, position, d) (stored as k + 128) in an 8-bit sketch of <paramref name="capacity"/> positions.</summary>
    public static long Index(int capacity, int headDim, int kvHead, int position, int d) =>
        ((((long)kvHead * Blocks(capacity) + position / B) * (headDim / 4) + d / 4) * B + position % B) * 4 + d % 4;

    /// <summary>Index of the byte holding k(kvHead, position, d) in a 4-bit sketch (low nibble for d % 8 below 4, else high).</summary>
    static long Index4(int capacity, int headDim, int kvHead, int position, int d) =>
        ((((long)kvHead * Blocks(capacity) + position / B) * (headDim / 8) + d / 8) * B + position % B) * 4 + d % 4;

    /// <summary>Bytes of a sketch of <paramref name="bits"/> (8 or 4) per value.</summary>
    public static long SketchBytes(int capacity, int kvHeads, int headDim, int bits) => BlockedAttention.CacheFloats(capacity, kvHeads, headDim) * bits / 8;

    /// <summary>k(kvHead, position, d) as stored (the scalar definition of both layouts).</summary>
    public static int Value(ReadOnlySpan<sbyte> sketch, int bits, int capacity, int headDim, int kvHead, int position, int d)
    {
        if (bits == 8) return (byte)sketch[(int)Index(capacity, headDim, kvHead, position, d)] - 128;
        int b = (byte)sketch[(int)Index4(capacity, headDim, kvHead, position, d)];
        return (d % 8 < 4 ? b & 15 : b >> 4) - 8;
    }

    /// <summary>Largest |query value|: 127 (int8, vpdpbusd's signed operand) for both sketches.</summary>
    public const int QueryMax = sbyte.MaxValue;

    /// <summary>Head h's query rounded to ±<see cref="QueryMax"/> (round to nearest even of q / scale) and its scale max|q| / QueryMax.</summary>
    public static float QuantizeQuery(ReadOnlySpan<float> q, Span<short> q16)
    {
        float max = 0;
        foreach (float x in q) max = Math.Max(max, Math.Abs(x));
        float top = QueryMax, inv = max > 0 ? top / max : 0f;
        for (int d = 0; d < q.Length; d++) q16[d] = (short)Math.Clamp(MathF.Round(q[d] * inv), -top, top);
        return max / top;
    }

    /// <summary>Scales a sketch of <paramref name="capacity"/> positions needs: [kvHead][position], padded to whole blocks.</summary>
    public static long ScaleCount(int capacity, int kvHeads) => (long)kvHeads * Blocks(capacity) * B;

    /// <summary>
    /// Quantizes the 16-position blocks holding positions [from, to) of every K/V head of <paramref name="kBlocks"/> (a
    /// blocked cache of <paramref name="capacity"/> positions) into <paramref name="sketch"/> (same layout, as bytes) and
    /// <paramref name="scales"/>; q = round-to-nearest-even(k / scale), scale = max|k| / 127 (7 with 4 bits; 0 for a zero row).
    /// </summary>
    public static void Quantize(ReadOnlySpan<float> kBlocks, int capacity, int kvHeads, int headDim, int from, int to, Span<sbyte> sketch, Span<float> scales, int bits = 8)
    {
        Validate(kBlocks, capacity, kvHeads, headDim, from, to, sketch, scales, bits);
        if (!Vector512.IsHardwareAccelerated || !Avx512F.IsSupported)
        {
            QuantizeReference(kBlocks, capacity, kvHeads, headDim, from, to, sketch, scales, bits);
            return;
        }
        float level = bits == 8 ? 127f : 7f;
        int blocks = Blocks(capacity);
        fixed (float* k = kBlocks, s = scales)
        fixed (sbyte* q = sketch)
        {
            for (int h = 0; h < kvHeads; h++)
                for (int b = from / B; b < (to + B - 1) / B; b++)
                {
                    long at = ((long)h * blocks + b) * headDim * B;
                    var max = Vector512<float>.Zero;
                    for (int d = 0; d < headDim; d++) max = Vector512.Max(max, Vector512.Abs(Vector512.Load(k + at + d * B)));
                    var inv = Vector512.ConditionalSelect(Vector512.GreaterThan(max, Vector512<float>.Zero), Vector512.Create(level) / max, Vector512<float>.Zero);
                    (max / Vector512.Create(level)).Store(s + ((long)h * blocks + b) * B);
                    for (int d = 0; d < headDim && bits == 4; d += 8)
                    {
                        // Channels d..d + 7 of a position in one 32-bit lane (byte c: d + c low, d + 4 + c high), each k + 8: 64 bytes.
                        var lanes = Vector512<int>.Zero;
                        for (int c = 0; c < 4; c++)
                        {
                            var lo = Vector512.Clamp(Avx512F.ConvertToVector512Int32(Vector512.Load(k + at + (d + c) * B) * inv), Vector512.Create(-7), Vector512.Create(7));
                            var hi = Vector512.Clamp(Avx512F.ConvertToVector512Int32(Vector512.Load(k + at + (d + 4 + c) * B) * inv), Vector512.Create(-7), Vector512.Create(7));
                            lanes |= ((lo + Vector512.Create(8)) | ((hi + Vector512.Create(8)) << 4)) << (8 * c);
                        }
                        lanes.Store((int*)(q + at / 2 + d * B / 2));
                    }
                    for (int d = 0; d < headDim && bits == 8; d += 4)
                    {
                        // Channels d..d + 3 of a position in one 32-bit lane, each byte k + 128: 64 bytes.
                        var lanes = Vector512<int>.Zero;
                        for (int c = 0; c < 4; c++)
                        {
                            var v = Vector512.Clamp(Avx512F.ConvertToVector512Int32(Vector512.Load(k + at + (d + c) * B) * inv), Vector512.Create(-127), Vector512.Create(127));
                            lanes |= ((v + Vector512.Create(128)) & Vector512.Create(0xFF)) << (8 * c);
                        }
                        lanes.Store((int*)(q + at + d * B));
                    }
                }
        }
    }

    /// <summary>The scalar reference of <see cref="Quantize"/>.</summary>
    public static void QuantizeReference(ReadOnlySpan<float> kBlocks, int capacity, int kvHeads, int headDim, int from, int to, Span<sbyte> sketch, Span<float> scales, int bits = 8)
    {
        Validate(kBlocks, capacity, kvHeads, headDim, from, to, sketch, scales, bits);
        int blocks = Blocks(capacity), level = bits == 8 ? 127 : 7;
        for (int h = 0; h < kvHeads; h++)
            for (int p = from / B * B; p < (to + B - 1) / B * B; p++)
            {
                long at = BlockedAttention.Index(capacity, headDim, h, p, 0);
                float max = 0;
                for (int d = 0; d < headDim; d++) max = Math.Max(max, Math.Abs(kBlocks[(int)(at + d * B)]));
                float inv = max > 0 ? level / max : 0f;
                scales[h * blocks * B + p] = max / level;
                for (int d = 0; d < headDim; d++)
                {
                    int v = (int)Math.Clamp(MathF.Round(kBlocks[(int)(at + d * B)] * inv), -level, level);
                    if (bits == 8) sketch[(int)Index(capacity, headDim, h, p, d)] = (sbyte)(v + 128);
                    else
                    {
                        ref sbyte x = ref sketch[(int)Index4(capacity, headDim, h, p, d)];
                        x = (sbyte)(d % 8 < 4 ? (x & 0xF0) | (v + 8) : (x & 0x0F) | ((v + 8) << 4));
                    }
                }
            }
    }

    static void Validate(ReadOnlySpan<float> kBlocks, int capacity, int kvHeads, int headDim, int from, int to, ReadOnlySpan<sbyte> sketch, ReadOnlySpan<float> scales, int bits)
    {
        long floats = BlockedAttention.CacheFloats(capacity, kvHeads, headDim);
        if (bits is not (4 or 8)) throw new ArgumentException($"a sketch has 4 or 8 bits per value (got {bits})");
        if (from < 0 || to > capacity || from > to) throw new ArgumentOutOfRangeException(nameof(from), $"positions [{from}, {to}) outside the cache of {capacity}");
        if (kBlocks.Length < floats || sketch.Length < SketchBytes(capacity, kvHeads, headDim, bits) || scales.Length < ScaleCount(capacity, kvHeads)) throw new ArgumentException("the cache, sketch or scales are smaller than the capacity");
        if (headDim % (bits == 8 ? 4 : 8) != 0) throw new ArgumentException($"the {bits}-bit sketch groups channels: head width must be a multiple of {(bits == 8 ? 4 : 8)}");
    }

    /// <summary>
    /// Approximate scaled scores q_h·K(p)/√headDim of every query head h for the positions [from, to) from the sketch:
    /// logits[h * (to - from) + i] = Σ_d qi_h[d]·k(p, d) × (scale(p) × (qscale_h / √headDim)), with the quantized query qi
    /// (int8, ±<see cref="QueryMax"/>, against both sketches) and qscale from <see cref="QuantizeQuery"/>. Heads of
    /// one K/V group share each block's loaded keys (up to four at a time); units run on up to <paramref name="threads"/> threads. As <see cref="SelectedAttention.Logits"/> on the F32 cache.
    /// <paramref name="softmax"/>: each head's row is then replaced by its softmax (by the unit that scored it, while the
    /// row is in its core's cache: TokenSelect's soft vote). With <paramref name="rowScales"/> (one per head) the rows are
    /// left unnormalized, exp(x - max), and rowScales[h] = 1 / Σ: softmax_h = row_h × rowScales[h], a pass over every row
    /// saved (<see cref="SoftVotes.Compute"/> folds the scale into its sum).
    /// </summary>
    public static void Logits(ReadOnlySpan<float> q, int heads, int kvHeads, int headDim, ReadOnlySpan<sbyte> sketch, ReadOnlySpan<float> scales,
        int capacity, int from, int to, Span<float> logits, int threads, bool softmax = false, int bits = 8, Span<float> rowScales = default) =>
        Logits(q, heads, kvHeads, headDim, sketch, scales, capacity, from, to, logits, threads, softmax, bits, AvxVnni.IsSupported, rowScales);

    /// <summary><see cref="Logits"/> with the 8-bit sketch's VNNI path on or off (tests run the AVX-512BW one too).</summary>
    internal static void Logits(ReadOnlySpan<float> q, int heads, int kvHeads, int headDim, ReadOnlySpan<sbyte> sketch, ReadOnlySpan<float> scales,
        int capacity, int from, int to, Span<float> logits, int threads, bool softmax, int bits, bool vnni, Span<float> rowScales = default, bool fusedVotes = false)
    {
        int n = to - from, group = heads / kvHeads, lane = bits == 8 ? 4 : 8, per = headDim / 4;
        if (n <= 0) return;
        if (bits is not (4 or 8)) throw new ArgumentException($"a sketch has 4 or 8 bits per value (got {bits})");
        if (from < 0 || to > capacity || logits.Length < (long)heads * n || q.Length < heads * headDim || heads % kvHeads != 0 || headDim % lane != 0) throw new ArgumentException("bad range, heads or buffers");
        if (sketch.Length < SketchBytes(capacity, kvHeads, headDim, bits) || scales.Length < ScaleCount(capacity, kvHeads)) throw new ArgumentException("the sketch or scales are smaller than the capacity");
        if (!rowScales.IsEmpty && (!softmax || rowScales.Length < heads)) throw new ArgumentException("row scales go with softmax, one per head");
        if (!Vector512.IsHardwareAccelerated || !Avx512BW.IsSupported)
        {
            LogitsReference(q, heads, kvHeads, headDim, sketch, scales, capacity, from, to, logits, softmax, bits);
            rowScales[..(rowScales.IsEmpty ? 0 : heads)].Fill(1f);
            return;
        }
        // Each head's int8 query, four channels per word: four int8 per int (vpdpbusd's broadcast) or four int16 per long
        // (vpmaddwd's). Bias: -128·Σ_d q (-8·Σ_d q with 4 bits: the keys' offset).
        var quads = new long[heads * per];
        var qScale = new float[heads];
        var bias = new int[heads];
        var qi = new short[headDim];
        for (int h = 0; h < heads; h++)
        {
            qScale[h] = QuantizeQuery(q.Slice(h * headDim, headDim), qi) / MathF.Sqrt(headDim);
            for (int d = 0; d < headDim; d++) bias[h] -= (bits == 8 ? 128 : 8) * qi[d];
            for (int g = 0; g < per; g++)
                quads[h * per + g] = vnni ? (uint)((byte)qi[4 * g] | (byte)qi[4 * g + 1] << 8 | (byte)qi[4 * g + 2] << 16 | (byte)qi[4 * g + 3] << 24)
                    : (long)(ushort)qi[4 * g] | (long)(ushort)qi[4 * g + 1] << 16 | (long)(ushort)qi[4 * g + 2] << 32 | (long)(ushort)qi[4 * g + 3] << 48;
        }
        fixed (long* pq = quads)
        fixed (int* pb = bias)
        fixed (float* ps = scales, pl = logits, pqs = qScale, prs = rowScales)
        fixed (sbyte* pk = sketch)
        {
            var job = new LogitsJob
            {
                Query = pq, Bias = pb, QScale = pqs, K = pk, Scales = ps, Out = pl, From = from, To = to, Softmax = softmax, RowScales = prs, Bits = bits, Vnni = vnni,
                Heads = heads, Group = group, HeadDim = headDim, Blocks = Blocks(capacity), FusedVotes = fusedVotes,
            };
            long work = (long)heads * n * headDim;
            KernelThreadPool.Shared.Run(&LogitsUnit, &job, (heads + 3) / 4, work < 1 << 14 ? 1 : threads);
        }
    }

    /// <summary>
    /// TokenSelect's soft votes from the sketch: votes[i] = Σ_h softmax_h[i], each head's softmax over the scores of
    /// <see cref="Logits"/> for the positions [from, to); <paramref name="rows"/> (heads × n floats) is scratch. With
    /// AVX-VNNI and K/V groups of a multiple of four heads (the 852M shape), fused: each unit of four heads takes the
    /// exponentials as it scores (against a running shift per head instead of the row's maximum, which is not known until
    /// the row is done: no max pass, no second pass over the rows) and sums its four rows, each times its 1/Σ, into one
    /// while they are in its core's cache; a last pass adds the units' rows (a quarter of what a sum over every head's row
    /// reads). Otherwise <see cref="Logits"/> with softmax, then <see cref="SoftVotes.Compute"/>. Both equal
    /// <see cref="VotesReference"/> within float rounding (a shift changes the exponentials' rounding, not their ratios).
    /// </summary>
    public static void Votes(ReadOnlySpan<float> q, int heads, int kvHeads, int headDim, ReadOnlySpan<sbyte> sketch, ReadOnlySpan<float> scales,
        int capacity, int from, int to, Span<float> rows, Span<float> votes, int threads, int bits = 8) =>
        Votes(q, heads, kvHeads, headDim, sketch, scales, capacity, from, to, rows, votes, threads, bits, fused: true);

    /// <summary><see cref="Votes"/> with its fused path allowed or not (tests compare the two).</summary>
    internal static void Votes(ReadOnlySpan<float> q, int heads, int kvHeads, int headDim, ReadOnlySpan<sbyte> sketch, ReadOnlySpan<float> scales,
        int capacity, int from, int to, Span<float> rows, Span<float> votes, int threads, int bits, bool fused)
    {
        int n = to - from;
        if (n <= 0) return;
        if (votes.Length < n || heads < 1 || kvHeads < 1) throw new ArgumentException("votes shorter than the range, or no heads");
        if (fused && AvxVnni.IsSupported && Avx512BW.IsSupported && Vector512.IsHardwareAccelerated && heads % kvHeads == 0 && heads / kvHeads % 4 == 0)
        {
            Logits(q, heads, kvHeads, headDim, sketch, scales, capacity, from, to, rows, threads, softmax: true, bits, vnni: true, fusedVotes: true);
            SoftVotes.Compute(rows, heads / 4, n, votes, threads, normalized: true, rowStride: 4 * n);   // the units' shares (rows 0, 4, 8, ...) summed
            return;
        }
        var rowScales = heads <= 256 ? stackalloc float[heads] : new float[heads];
        Logits(q, heads, kvHeads, headDim, sketch, scales, capacity, from, to, rows, threads, softmax: true, bits, AvxVnni.IsSupported, rowScales);
        SoftVotes.Compute(rows, heads, n, votes, threads, normalized: true, rowScales);
    }

    /// <summary>The scalar reference of <see cref="Votes"/>: <see cref="LogitsReference"/>'s scores, <see cref="SoftVotes.Reference"/>'s vote.</summary>
    public static void VotesReference(ReadOnlySpan<float> q, int heads, int kvHeads, int headDim, ReadOnlySpan<sbyte> sketch, ReadOnlySpan<float> scales,
        int capacity, int from, int to, Span<float> votes, int bits = 8)
    {
        int n = to - from;
        var logits = new float[heads * n];
        LogitsReference(q, heads, kvHeads, headDim, sketch, scales, capacity, from, to, logits, bits: bits);
        SoftVotes.Reference(logits, heads, n, votes);
    }

    /// <summary>The scalar reference of <see cref="Logits"/> (softmax in double).</summary>
    public static void LogitsReference(ReadOnlySpan<float> q, int heads, int kvHeads, int headDim, ReadOnlySpan<sbyte> sketch, ReadOnlySpan<float> scales,
        int capacity, int from, int to, Span<float> logits, bool softmax = false, int bits = 8)
    {
        int n = to - from, group = heads / kvHeads, blocks = Blocks(capacity);
        var q16 = new short[headDim];
        for (int h = 0; h < heads; h++)
        {
            float qs = QuantizeQuery(q.Slice(h * headDim, headDim), q16) / MathF.Sqrt(headDim);
            for (int i = 0; i < n; i++)
            {
                int kvHead = h / group, p = from + i, sum = 0;
                for (int d = 0; d < headDim; d++) sum += q16[d] * Value(sketch, bits, capacity, headDim, kvHead, p, d);
                logits[h * n + i] = sum * (scales[kvHead * blocks * B + p] * qs);
            }
            if (!softmax) continue;
            var row = logits.Slice(h * n, n);
            float max = float.NegativeInfinity;
            foreach (float x in row) max = Math.Max(max, x);
            double z = 0;
            foreach (float x in row) z += Math.Exp(x - max);
            for (int i = 0; i < n; i++) row[i] = (float)(Math.Exp(row[i] - max) / z);
        }
    }

    struct LogitsJob
    {
        public long* Query;
        public int* Bias;
        public float* QScale, Scales, Out, RowScales;
        public sbyte* K;
        public int From, To, Heads, Group, HeadDim, Blocks, Bits;
        public bool Softmax, Vnni;
        /// <summary><see cref="Votes"/>' fused path: each unit's exponentials, and its four rows' share of the vote in its first row.</summary>
        public bool FusedVotes;
    }

    /// <summary>Heads 4u.. (split at K/V group edges).</summary>
    static void LogitsUnit(void* ctx, int u)
    {
        var j = (LogitsJob*)ctx;
        int n = j->To - j->From;
        float* lanes = stackalloc float[4 * B];
        float* max = stackalloc float[4];
        for (int h = 4 * u; h < Math.Min(4 * u + 4, j->Heads);)
        {
            int m = SelectedAttention.UnitRun(u, h, j->Heads, j->Group), kvHead = h / j->Group, hd = j->HeadDim;
            if (j->FusedVotes)
            {
                // Votes' fused path (groups of a multiple of 4, VNNI): the four heads' exponentials, then their vote into row h.
                Score4Exp(j, h, lanes);
                break;
            }
            bool maxKnown = m == 4 && j->Vnni;
            if (maxKnown) Score4Vnni(j, h, lanes, max);
            else for (int b = j->From / B; b < (j->To + B - 1) / B; b++)
            {
                sbyte* kb = j->K + ((long)kvHead * j->Blocks + b) * hd * B * j->Bits / 8;
                var (a0, a1, a2, a3) = j->Vnni ? Block8Vnni(kb, j->Query + h * (hd / 4), j->Bias + h, hd / 4, m, j->Bits == 4)
                    : Block8(kb, j->Query + h * (hd / 4), j->Bias + h, hd / 4, m, j->Bits == 4);
                var s = Vector512.Load(j->Scales + ((long)kvHead * j->Blocks + b) * B);
                StoreBlock(j, h, m, b, lanes, Vector512.ConvertToSingle(a0) * (s * j->QScale[h]),
                    m > 1 ? Vector512.ConvertToSingle(a1) * (s * j->QScale[h + 1]) : default,
                    m > 2 ? Vector512.ConvertToSingle(a2) * (s * j->QScale[h + 2]) : default,
                    m > 3 ? Vector512.ConvertToSingle(a3) * (s * j->QScale[h + 3]) : default);
            }
            if (j->Softmax)
                for (int x = h; x < h + m; x++)
                {
                    var row = new Span<float>(j->Out + (long)x * n, n);
                    float inv = 1f / ExpMinusMax(j->Out + (long)x * n, n, maxKnown ? max[x - h] : Ops.Max(row));
                    if (j->RowScales != null) j->RowScales[x] = inv;
                    else Ops.Scale(row, inv);
                }
            h += m;
        }
    }

    /// <summary>Four heads h.. of one K/V group over every 8-bit block of [From, To) by AVX-VNNI (the common case: groups
    /// of 4 or more): <see cref="Block8Vnni"/> without its branches, call and returned tuple, eight accumulators in registers.</summary>
    static void Score4Vnni(LogitsJob* j, int h, float* lanes, float* max)
    {
        // Each head's running maximum (the softmax's), lanes outside [From, To) at -∞.
        Vector512<float> m0 = Vector512.Create(float.NegativeInfinity), m1 = m0, m2 = m0, m3 = m0;
        int hd = j->HeadDim, quads = hd / 4, kvHead = h / j->Group, n = j->To - j->From;
        // The four heads' query words interleaved (word g of head x at 4g + x): one pointer, constant offsets; the
        // biases and scales reloaded per block, so that only the accumulators, keys and one broadcast live in the loop.
        int* qw = stackalloc int[4 * quads];
        Interleave(j, h, qw);
        int* bias = j->Bias + h;
        float* qs = j->QScale + h, dst = j->Out + (long)h * n;
        for (int b = j->From / B; b < (j->To + B - 1) / B; b++)
        {
            Scores4(j, kvHead, b, qw, bias, qs, out var f0, out var f1, out var f2, out var f3);
            int i0 = b * B - j->From;
            if (i0 >= 0 && i0 + B <= n)
            {
                f0.Store(dst + i0);
                f1.Store(dst + n + i0);
                f2.Store(dst + 2L * n + i0);
                f3.Store(dst + 3L * n + i0);
            }
            else
            {
                StoreBlock(j, h, 4, b, lanes, f0, f1, f2, f3);
                var inside = Vector512.GreaterThanOrEqual(Vector512.Create(i0) + Vector512<int>.Indices, Vector512<int>.Zero)
                    & Vector512.LessThan(Vector512.Create(i0) + Vector512<int>.Indices, Vector512.Create(n));
                var ninf = Vector512.Create(float.NegativeInfinity);
                f0 = Vector512.ConditionalSelect(inside.AsSingle(), f0, ninf);
                f1 = Vector512.ConditionalSelect(inside.AsSingle(), f1, ninf);
                f2 = Vector512.ConditionalSelect(inside.AsSingle(), f2, ninf);
                f3 = Vector512.ConditionalSelect(inside.AsSingle(), f3, ninf);
            }
            m0 = Vector512.Max(m0, f0);
            m1 = Vector512.Max(m1, f1);
            m2 = Vector512.Max(m2, f2);
            m3 = Vector512.Max(m3, f3);
        }
        (max[0], max[1], max[2], max[3]) = (HMax(m0), HMax(m1), HMax(m2), HMax(m3));
    }

    /// <summary>Heads h..h + 3's query words interleaved (word g of head x at 4g + x): one pointer, constant offsets.</summary>
    static void Interleave(LogitsJob* j, int h, int* qw)
    {
        int quads = j->HeadDim / 4;
        for (int g = 0; g < quads; g++)
            for (int x = 0; x < 4; x++) qw[4 * g + x] = (int)j->Query[(h + x) * quads + g];
    }

    /// <summary>How far (in log2 units) a score may pass its head's shift before the shift is raised: exponentials up to
    /// 2^64, so a row's sum stays far below float's 2^128 for any length.</summary>
    const float Slack = 64f;

    /// <summary>
    /// <see cref="Votes"/>' unit: heads h..h + 3 of one K/V group over every block of [From, To) (<see cref="Sums4"/>), each
    /// block's scores t (in log2 units) turned into 2^(t - c) at once, against a shift c per head that is raised to the
    /// block's maximum (the row so far and its sum rescaled by 2^(c_old - c_new)) only when a score passes c + <see
    /// cref="Slack"/>: at the first block and at rare jumps. Then row h = Σ_x row_(h+x) / Σ_(h+x): the group's share of the
    /// vote, while the rows are in this core's cache.
    /// </summary>
    static void Score4Exp(LogitsJob* j, int h, float* lanes)
    {
        int hd = j->HeadDim, kvHead = h / j->Group, n = j->To - j->From;
        int* qw = stackalloc int[hd];
        Interleave(j, h, qw);
        int* bias = j->Bias + h;
        float* qs = stackalloc float[4];
        float* c = stackalloc float[4];
        for (int x = 0; x < 4; x++) (qs[x], c[x]) = (j->QScale[h + x] * 1.44269504f, float.NegativeInfinity);
        float* dst = j->Out + (long)h * n;
        Vector512<float> z0 = default, z1 = default, z2 = default, z3 = default;
        for (int b = j->From / B; b < (j->To + B - 1) / B; b++)
        {
            Scores4(j, kvHead, b, qw, bias, qs, out var t0, out var t1, out var t2, out var t3);
            int i0 = b * B - j->From;
            bool whole = i0 >= 0 && i0 + B <= n;
            var inside = Vector512<float>.AllBitsSet;
            if (!whole)
            {
                // Lanes outside [From, To): -∞ for the shift's test, 0 after the exponential.
                inside = (Vector512.GreaterThanOrEqual(Vector512.Create(i0) + Vector512<int>.Indices, Vector512<int>.Zero)
                    & Vector512.LessThan(Vector512.Create(i0) + Vector512<int>.Indices, Vector512.Create(n))).AsSingle();
                var ninf = Vector512.Create(float.NegativeInfinity);
                (t0, t1, t2, t3) = (Vector512.ConditionalSelect(inside, t0, ninf), Vector512.ConditionalSelect(inside, t1, ninf),
                    Vector512.ConditionalSelect(inside, t2, ninf), Vector512.ConditionalSelect(inside, t3, ninf));
            }
            if (Vector512.GreaterThanAny(t0, Vector512.Create(c[0] + Slack))) Raise(dst, i0, ref c[0], ref z0, t0);
            if (Vector512.GreaterThanAny(t1, Vector512.Create(c[1] + Slack))) Raise(dst + n, i0, ref c[1], ref z1, t1);
            if (Vector512.GreaterThanAny(t2, Vector512.Create(c[2] + Slack))) Raise(dst + 2L * n, i0, ref c[2], ref z2, t2);
            if (Vector512.GreaterThanAny(t3, Vector512.Create(c[3] + Slack))) Raise(dst + 3L * n, i0, ref c[3], ref z3, t3);
            var e0 = Exp2(t0 - Vector512.Create(c[0])) & inside;
            var e1 = Exp2(t1 - Vector512.Create(c[1])) & inside;
            var e2 = Exp2(t2 - Vector512.Create(c[2])) & inside;
            var e3 = Exp2(t3 - Vector512.Create(c[3])) & inside;
            (z0, z1, z2, z3) = (z0 + e0, z1 + e1, z2 + e2, z3 + e3);
            if (whole)
            {
                e0.Store(dst + i0);
                e1.Store(dst + n + i0);
                e2.Store(dst + 2L * n + i0);
                e3.Store(dst + 3L * n + i0);
            }
            else StoreBlock(j, h, 4, b, lanes, e0, e1, e2, e3);
        }
        var w0 = Vector512.Create(1f / Vector512.Sum(z0));
        var w1 = Vector512.Create(1f / Vector512.Sum(z1));
        var w2 = Vector512.Create(1f / Vector512.Sum(z2));
        var w3 = Vector512.Create(1f / Vector512.Sum(z3));
        int i = 0;
        for (; i + B <= n; i += B)
        {
            var v = Vector512.Load(dst + i) * w0;
            v = Vector512.FusedMultiplyAdd(Vector512.Load(dst + n + i), w1, v);
            v = Vector512.FusedMultiplyAdd(Vector512.Load(dst + 2L * n + i), w2, v);
            Vector512.FusedMultiplyAdd(Vector512.Load(dst + 3L * n + i), w3, v).Store(dst + i);
        }
        for (; i < n; i++) dst[i] = dst[i] * w0[0] + dst[n + i] * w1[0] + dst[2L * n + i] * w2[0] + dst[3L * n + i] * w3[0];
    }

    /// <summary>A head's shift raised to the block's largest score t: its row's first i0 values and its sum rescaled.</summary>
    static void Raise(float* row, int i0, ref float c, ref Vector512<float> z, Vector512<float> t)
    {
        float top = HMax(t);
        if (i0 > 0)
        {
            float f = MathF.Pow(2f, c - top);
            Ops.Scale(new Span<float>(row, i0), f);
            z *= f;
        }
        c = top;
    }

    /// <summary>How many blocks ahead the four-head loops prefetch the sketch (4 / 8 KB with 4 / 8 bits at head width 64;
    /// 2, 8 and 32 measured alike).</summary>
    const int PrefetchBlocks = 8;

    /// <summary>Block b's scores of heads h..h + 3 (K/V head kvHead): the integer sums times each position's scale and each head's qs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Scores4(LogitsJob* j, int kvHead, int b, int* qw, int* bias, float* qs,
        out Vector512<float> f0, out Vector512<float> f1, out Vector512<float> f2, out Vector512<float> f3)
    {
        int hd = j->HeadDim;
        byte* kb = (byte*)j->K + ((long)kvHead * j->Blocks + b) * hd * B * j->Bits / 8;
        // The block PrefetchBlocks ahead requested now (a prefetch past the sketch's end does not fault): the hardware
        // prefetcher alone left the stream's latency exposed (16k, 1 thread: ~7.0 -> ~6.1 ms per token, 4 bits).
        int bytes = hd * B * j->Bits / 8;
        for (int o = 0; o < bytes; o += 64) Sse.Prefetch0(kb + PrefetchBlocks * bytes + o);
        Sums4(kb, qw, bias, hd, j->Bits == 4, out var s0, out var s1, out var s2, out var s3);
        var s = Vector512.Load(j->Scales + ((long)kvHead * j->Blocks + b) * B);
        f0 = Vector512.ConvertToSingle(s0) * (s * qs[0]);
        f1 = Vector512.ConvertToSingle(s1) * (s * qs[1]);
        f2 = Vector512.ConvertToSingle(s2) * (s * qs[2]);
        f3 = Vector512.ConvertToSingle(s3) * (s * qs[3]);
    }

    /// <summary>One block's integer sums of four heads (from their biases) by AVX-VNNI, the query words interleaved in
    /// <paramref name="qw"/> (word g of head x at 4g + x): sixteen accumulators (two sets of eight chains), the keys loaded once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Sums4(byte* kb, int* qw, int* bias, int hd, bool four, out Vector512<int> s0, out Vector512<int> s1, out Vector512<int> s2, out Vector512<int> s3)
    {
        Vector256<int> a0 = Vector256.Create(bias[0]), c0 = a0, a1 = Vector256.Create(bias[1]), c1 = a1;
        Vector256<int> a2 = Vector256.Create(bias[2]), c2 = a2, a3 = Vector256.Create(bias[3]), c3 = a3;
        int* w = qw;
        var nib = Vector256.Create((byte)15);
        Vector256<int> b0 = default, d0 = default, b1 = default, d1 = default, b2 = default, d2 = default, b3 = default, d3 = default;
        if (four)
        {
            for (byte* end = kb + hd * B / 2; kb < end; kb += 4 * B, w += 8)
            {
                // Eight channels per lane: low nibbles are the query's word 2g (first accumulators), high nibbles word
                // 2g + 1 (second ones: two sets of chains, as below).
                var x = Vector256.Load(kb);
                var y = Vector256.Load(kb + 2 * B);
                Madd4(ref a0, ref c0, ref a1, ref c1, ref a2, ref c2, ref a3, ref c3, x & nib, y & nib, w);
                var lo = Vector256.ShiftRightLogical(x.AsUInt16(), 4).AsByte() & nib;
                var hi = Vector256.ShiftRightLogical(y.AsUInt16(), 4).AsByte() & nib;
                Madd4(ref b0, ref d0, ref b1, ref d1, ref b2, ref d2, ref b3, ref d3, lo, hi, w + 4);
            }
        }
        else
        {
            // Two four-channel words per step into two sets of accumulators: 16 chains, so that vpdpbusd's latency (a
            // chain of hd / 4 per block with one set) does not bound its throughput.
            byte* end = kb + hd * B;
            for (; kb + 8 * B <= end; kb += 8 * B, w += 8)
            {
                Madd4(ref a0, ref c0, ref a1, ref c1, ref a2, ref c2, ref a3, ref c3, Vector256.Load(kb), Vector256.Load(kb + 2 * B), w);
                Madd4(ref b0, ref d0, ref b1, ref d1, ref b2, ref d2, ref b3, ref d3, Vector256.Load(kb + 4 * B), Vector256.Load(kb + 6 * B), w + 4);
            }
            if (kb < end) Madd4(ref a0, ref c0, ref a1, ref c1, ref a2, ref c2, ref a3, ref c3, Vector256.Load(kb), Vector256.Load(kb + 2 * B), w);
        }
        (a0, c0, a1, c1, a2, c2, a3, c3) = (a0 + b0, c0 + d0, a1 + b1, c1 + d1, a2 + b2, c2 + d2, a3 + b3, c3 + d3);
        (s0, s1, s2, s3) = (Vector512.Create(a0, c0), Vector512.Create(a1, c1), Vector512.Create(a2, c2), Vector512.Create(a3, c3));
    }

    /// <summary>Four heads' sums (a: positions 0-7, c: 8-15) += one four-channel word of keys × each head's query word w[x].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Madd4(ref Vector256<int> a0, ref Vector256<int> c0, ref Vector256<int> a1, ref Vector256<int> c1, ref Vector256<int> a2, ref Vector256<int> c2,
        ref Vector256<int> a3, ref Vector256<int> c3, Vector256<byte> lo, Vector256<byte> hi, int* w)
    {
        a0 = AvxVnni.MultiplyWideningAndAdd(a0, lo, Vector256.Create(w[0]).AsSByte());
        c0 = AvxVnni.MultiplyWideningAndAdd(c0, hi, Vector256.Create(w[0]).AsSByte());
        a1 = AvxVnni.MultiplyWideningAndAdd(a1, lo, Vector256.Create(w[1]).AsSByte());
        c1 = AvxVnni.MultiplyWideningAndAdd(c1, hi, Vector256.Create(w[1]).AsSByte());
        a2 = AvxVnni.MultiplyWideningAndAdd(a2, lo, Vector256.Create(w[2]).AsSByte());
        c2 = AvxVnni.MultiplyWideningAndAdd(c2, hi, Vector256.Create(w[2]).AsSByte());
        a3 = AvxVnni.MultiplyWideningAndAdd(a3, lo, Vector256.Create(w[3]).AsSByte());
        c3 = AvxVnni.MultiplyWideningAndAdd(c3, hi, Vector256.Create(w[3]).AsSByte());
    }

    static float HMax(Vector512<float> v)
    {
        float m = float.NegativeInfinity;
        for (int l = 0; l < B; l++) m = Math.Max(m, v[l]);
        return m;
    }

    /// <summary>
    /// row = exp(row - max) in place; returns the sum. The vote's exponentials (32 heads x every candidate per layer, as
    /// many as the scores' multiply-adds' vectors): 2^t with t = (x - max)·log2 e, 2^round(t) by vscalefps and 2^f, |f| ≤ ½,
    /// by a degree-5 polynomial (relative error ≤ 2.4e-6; the softmax only ranks), no clamps (x - max ≤ 0, and vscalefps
    /// flushes a very negative exponent to 0): ~11 instructions per 16 values, about 60% of <see cref="Ops.ExpMinusMax"/>'s.
    /// </summary>
    static float ExpMinusMax(float* row, int n, float max)
    {
        var log2e = Vector512.Create(1.44269504f);
        var shift = Vector512.Create(-max * 1.44269504f);
        var sum = Vector512<float>.Zero;
        int i = 0;
        for (; i + B <= n; i += B)
        {
            var e = Exp2(Vector512.FusedMultiplyAdd(Vector512.Load(row + i), log2e, shift));
            e.Store(row + i);
            sum += e;
        }
        float s = Vector512.Sum(sum);
        for (; i < n; i++) s += row[i] = MathF.Exp(row[i] - max);
        return s;
    }

    /// <summary>2^t for finite t below 127 (the softmax's t ≤ 0, the fused votes' t ≤ <see cref="Slack"/>): 2^round(t) by
    /// vscalefps (a very negative exponent flushes to 0) times 2^f, |f| ≤ ½,
    /// by a degree-5 polynomial (relative error ≤ 2.4e-6).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Exp2(Vector512<float> t)
    {
        var k = Avx512F.RoundScale(t, 0x08);   // to nearest, no exceptions
        var f = t - k;
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(1.33335581e-3f), f, Vector512.Create(9.61812911e-3f));   // (ln 2)^j / j!
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(5.55041087e-2f));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(0.240226507f));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(0.693147181f));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512<float>.One);
        return Avx512F.Scale(p, k);
    }

    /// <summary>One block's scores of m heads h.. into their rows (only the lanes inside [From, To)).</summary>
    static void StoreBlock(LogitsJob* j, int h, int m, int b, float* lanes, Vector512<float> f0, Vector512<float> f1, Vector512<float> f2, Vector512<float> f3)
    {
        int n = j->To - j->From, p0 = b * B, i0 = p0 - j->From;
        float* dst = j->Out + (long)h * n;
        if (p0 >= j->From && p0 + B <= j->To)
        {
            // A whole block inside the range: the scores are the lanes.
            f0.Store(dst + i0);
            if (m > 1) f1.Store(dst + n + i0);
            if (m > 2) f2.Store(dst + 2L * n + i0);
            if (m > 3) f3.Store(dst + 3L * n + i0);
            return;
        }
        f0.Store(lanes);
        f1.Store(lanes + B);
        f2.Store(lanes + 2 * B);
        f3.Store(lanes + 3 * B);
        for (int l = Math.Max(0, j->From - p0); l < Math.Min(B, j->To - p0); l++)
            for (int x = 0; x < m; x++) dst[(long)x * n + i0 + l] = lanes[x * B + l];
    }

    /// <summary>Integer sums of m heads over one 8-bit block by AVX-VNNI: per four channels, one vpdpbusd per 8
    /// positions and head (the keys' bytes unsigned, the query's four int8 broadcast), from each head's bias.</summary>
    static (Vector512<int>, Vector512<int>, Vector512<int>, Vector512<int>) Block8Vnni(sbyte* kb, long* q, int* bias, int quads, int m, bool four)
    {
        Vector256<int> a0 = Vector256.Create(bias[0]), c0 = a0, a1 = default, c1 = default, a2 = default, c2 = default, a3 = default, c3 = default;
        if (m > 1) c1 = a1 = Vector256.Create(bias[1]);
        if (m > 2) c2 = a2 = Vector256.Create(bias[2]);
        if (m > 3) c3 = a3 = Vector256.Create(bias[3]);
        for (int g = 0; g < quads; g++)
        {
            var lo = Quad((byte*)kb, g, 0, four);
            var hi = Quad((byte*)kb, g, 1, four);
            var w = Vector256.Create((int)q[g]).AsSByte();
            a0 = AvxVnni.MultiplyWideningAndAdd(a0, lo, w);
            c0 = AvxVnni.MultiplyWideningAndAdd(c0, hi, w);
            if (m < 2) continue;
            w = Vector256.Create((int)q[quads + g]).AsSByte();
            a1 = AvxVnni.MultiplyWideningAndAdd(a1, lo, w);
            c1 = AvxVnni.MultiplyWideningAndAdd(c1, hi, w);
            if (m < 3) continue;
            w = Vector256.Create((int)q[2 * quads + g]).AsSByte();
            a2 = AvxVnni.MultiplyWideningAndAdd(a2, lo, w);
            c2 = AvxVnni.MultiplyWideningAndAdd(c2, hi, w);
            if (m < 4) continue;
            w = Vector256.Create((int)q[3 * quads + g]).AsSByte();
            a3 = AvxVnni.MultiplyWideningAndAdd(a3, lo, w);
            c3 = AvxVnni.MultiplyWideningAndAdd(c3, hi, w);
        }
        return (Vector512.Create(a0, c0), Vector512.Create(a1, c1), Vector512.Create(a2, c2), Vector512.Create(a3, c3));
    }

    /// <summary><see cref="Block8Vnni"/> without VNNI: the keys widened to int16 (8 positions x 4 channels), vpmaddwd with
    /// the query's four int16 (lanes: each position's sums of channels 0-1 and 2-3), the pairs added at the end.</summary>
    static (Vector512<int>, Vector512<int>, Vector512<int>, Vector512<int>) Block8(sbyte* kb, long* q, int* bias, int quads, int m, bool four)
    {
        Vector512<int> a0 = default, c0 = default, a1 = default, c1 = default, a2 = default, c2 = default, a3 = default, c3 = default;
        for (int g = 0; g < quads; g++)
        {
            var lo = Avx512BW.ConvertToVector512Int16(Quad((byte*)kb, g, 0, four));
            var hi = Avx512BW.ConvertToVector512Int16(Quad((byte*)kb, g, 1, four));
            var w = Vector512.Create(q[g]).AsInt16();
            a0 += Avx512BW.MultiplyAddAdjacent(lo, w);
            c0 += Avx512BW.MultiplyAddAdjacent(hi, w);
            if (m < 2) continue;
            w = Vector512.Create(q[quads + g]).AsInt16();
            a1 += Avx512BW.MultiplyAddAdjacent(lo, w);
            c1 += Avx512BW.MultiplyAddAdjacent(hi, w);
            if (m < 3) continue;
            w = Vector512.Create(q[2 * quads + g]).AsInt16();
            a2 += Avx512BW.MultiplyAddAdjacent(lo, w);
            c2 += Avx512BW.MultiplyAddAdjacent(hi, w);
            if (m < 4) continue;
            w = Vector512.Create(q[3 * quads + g]).AsInt16();
            a3 += Avx512BW.MultiplyAddAdjacent(lo, w);
            c3 += Avx512BW.MultiplyAddAdjacent(hi, w);
        }
        return (PairSums(a0, c0, bias[0]), m > 1 ? PairSums(a1, c1, bias[1]) : default, m > 2 ? PairSums(a2, c2, bias[2]) : default, m > 3 ? PairSums(a3, c3, bias[3]) : default);
    }

    static readonly Vector512<int> Evens = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);

    /// <summary>Positions 0-7's lane pairs in lo, 8-15's in hi: each pair's sum, in position order, plus the bias.</summary>
    static Vector512<int> PairSums(Vector512<int> lo, Vector512<int> hi, int bias) =>
        Avx512F.PermuteVar16x32x2(lo, Evens, hi) + Avx512F.PermuteVar16x32x2(lo, Evens + Vector512<int>.One, hi) + Vector512.Create(bias);

    /// <summary>Channels 4g..4g + 3 of a block's positions 0-7 (<paramref name="half"/> 0) or 8-15 (1) as unsigned bytes, one
    /// position per 32-bit lane: the 8-bit sketch's 32 bytes as stored; the 4-bit sketch's low (g even) or high (g odd)
    /// nibbles of the lanes holding channels 8(g / 2)...</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<byte> Quad(byte* kb, int g, int half, bool four)
    {
        if (!four) return Vector256.Load(kb + g * 4 * B + half * 2 * B);
        var x = Vector256.Load(kb + g / 2 * 4 * B + half * 2 * B);
        return (g % 2 == 0 ? x : Vector256.ShiftRightLogical(x.AsUInt16(), 4).AsByte()) & Vector256.Create((byte)15);
    }
}
