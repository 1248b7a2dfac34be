using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pare.Kernels;

/// <summary>
/// An int8 copy of a blocked F32 K cache for scoring every cached position (TokenSelect's selection pass): blocks of 16
/// positions as in <see cref="BlockedAttention"/>'s K, one signed byte per value, channels in pairs,
/// K[kvHead][block][d / 2][16 positions][d % 2] (<see cref="Index"/>), and one scale per (K/V head, position),
/// max|k| / 127 over the head's row. A quarter of F32 K's bytes (plus 4 bytes per row of scales): the pass over every
/// position is memory-bound, so it reads about a quarter. With 4 bits: values in -7..7 (scale max|k| / 7), a pair of
/// channels per byte (low nibble d, high d + 1), K[kvHead][block][d / 2][16 positions]: an eighth of F32 K. The scores multiply int16 queries (each head's row scaled to
/// ±<see cref="QueryMax"/>) with the int8 keys by pairs of channels (AVX-512 vpmaddwd: two products and their sum per
/// 32-bit lane, exact in int32), half the instructions of converting every key to float.
/// The <c>*Reference</c> methods are the scalar definitions the vector paths are tested against.
/// </summary>
public static unsafe class KeySketch
{
    const int B = BlockedAttention.Block;

    static int Blocks(int capacity) => (capacity + B - 1) / B;

    /// <summary>Index of k(kvHead, position, d) in an 8-bit sketch of <paramref name="capacity"/> positions.</summary>
    public static long Index(int capacity, int headDim, int kvHead, int position, int d) =>
        ((((long)kvHead * Blocks(capacity) + position / B) * (headDim / 2) + d / 2) * B + position % B) * 2 + d % 2;

    /// <summary>Index of the byte holding k(kvHead, position, d) and its pair in a 4-bit sketch (nibble d % 2).</summary>
    static long Index4(int capacity, int headDim, int kvHead, int position, int d) =>
        (((long)kvHead * Blocks(capacity) + position / B) * (headDim / 2) + d / 2) * B + position % B;

    /// <summary>Bytes of a sketch of <paramref name="bits"/> (8 or 4) per value.</summary>
    public static long SketchBytes(int capacity, int kvHeads, int headDim, int bits) => BlockedAttention.CacheFloats(capacity, kvHeads, headDim) * bits / 8;

    /// <summary>k(kvHead, position, d) as stored (the scalar definition of both layouts).</summary>
    public static int Value(ReadOnlySpan<sbyte> sketch, int bits, int capacity, int headDim, int kvHead, int position, int d)
    {
        if (bits == 8) return sketch[(int)Index(capacity, headDim, kvHead, position, d)];
        int b = sketch[(int)Index4(capacity, headDim, kvHead, position, d)];
        return d % 2 == 0 ? (sbyte)(b << 4) >> 4 : b >> 4;
    }

    /// <summary>Largest |int16 query value|: a head's Σ_d of headDim products ≤ 128 × QueryMax stays inside int32.</summary>
    public static int QueryMax(int headDim) => Math.Min(short.MaxValue, int.MaxValue / (128 * headDim));

    /// <summary>Head h's query as int16 (round to nearest even of q / scale) and its scale max|q| / <see cref="QueryMax"/>.</summary>
    public static float QuantizeQuery(ReadOnlySpan<float> q, Span<short> q16)
    {
        float max = 0;
        foreach (float x in q) max = Math.Max(max, Math.Abs(x));
        float top = QueryMax(q.Length), inv = max > 0 ? top / max : 0f;
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
                    for (int d = 0; d < headDim && bits == 4; d += 2)
                    {
                        // Channels d (low nibble) and d + 1 (high) of each position in one byte: 16 bytes.
                        var even = Avx512F.ConvertToVector512Int32(Vector512.Load(k + at + d * B) * inv);
                        var odd = Avx512F.ConvertToVector512Int32(Vector512.Load(k + at + (d + 1) * B) * inv);
                        var packed = (even & Vector512.Create(15)) | ((odd & Vector512.Create(15)) << 4);
                        Avx512F.ConvertToVector128Byte(packed.AsUInt32()).AsSByte().Store(q + at / 2 + d / 2 * B);
                    }
                    for (int d = 0; d < headDim && bits == 8; d += 2)
                    {
                        // Channels d and d + 1 interleaved per position: 32 bytes.
                        var even = Avx512F.ConvertToVector128SByteWithSaturation(Avx512F.ConvertToVector512Int32(Vector512.Load(k + at + d * B) * inv));
                        var odd = Avx512F.ConvertToVector128SByteWithSaturation(Avx512F.ConvertToVector512Int32(Vector512.Load(k + at + (d + 1) * B) * inv));
                        Sse2.UnpackLow(even, odd).Store(q + at + d * B);
                        Sse2.UnpackHigh(even, odd).Store(q + at + d * B + B);
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
                    if (bits == 8) sketch[(int)Index(capacity, headDim, h, p, d)] = (sbyte)v;
                    else
                    {
                        ref sbyte x = ref sketch[(int)Index4(capacity, headDim, h, p, d)];
                        x = (sbyte)(d % 2 == 0 ? (x & 0xF0) | (v & 0xF) : (x & 0x0F) | (v << 4));
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
        if (headDim % 2 != 0) throw new ArgumentException("the sketch pairs channels: head width must be even");
    }

    /// <summary>
    /// Approximate scaled scores q_h·K(p)/√headDim of every query head h for the positions [from, to) from the sketch:
    /// logits[h * (to - from) + i] = Σ_d q16_h[d]·k8(p, d) × (scale(p) × (qscale_h / √headDim)), with q16, qscale from
    /// <see cref="QuantizeQuery"/>. Heads of one K/V group share each widened block row (up to four at a time); units
    /// run on up to <paramref name="threads"/> threads. As <see cref="SelectedAttention.Logits"/> on the F32 cache.
    /// <paramref name="softmax"/>: each head's row is then replaced by its softmax (by the unit that scored it, while the
    /// row is in its core's cache: TokenSelect's soft vote).
    /// </summary>
    public static void Logits(ReadOnlySpan<float> q, int heads, int kvHeads, int headDim, ReadOnlySpan<sbyte> sketch, ReadOnlySpan<float> scales,
        int capacity, int from, int to, Span<float> logits, int threads, bool softmax = false, int bits = 8)
    {
        int n = to - from, group = heads / kvHeads, half = headDim / 2;
        if (n <= 0) return;
        if (from < 0 || to > capacity || logits.Length < (long)heads * n || q.Length < heads * headDim || heads % kvHeads != 0 || headDim % 2 != 0) throw new ArgumentException("bad range, heads or buffers");
        if (bits is not (4 or 8)) throw new ArgumentException($"a sketch has 4 or 8 bits per value (got {bits})");
        if (sketch.Length < SketchBytes(capacity, kvHeads, headDim, bits) || scales.Length < ScaleCount(capacity, kvHeads)) throw new ArgumentException("the sketch or scales are smaller than the capacity");
        if (!Vector512.IsHardwareAccelerated || !Avx512BW.IsSupported)
        {
            LogitsReference(q, heads, kvHeads, headDim, sketch, scales, capacity, from, to, logits, softmax, bits);
            return;
        }
        // Each head's int16 query, as pairs of channels (one int32 each, broadcast against a row of pairs).
        var pairs = new int[heads * half];
        var qScale = new float[heads];
        var q16 = new short[headDim];
        for (int h = 0; h < heads; h++)
        {
            qScale[h] = QuantizeQuery(q.Slice(h * headDim, headDim), q16) / MathF.Sqrt(headDim);
            for (int d = 0; d < half; d++) pairs[h * half + d] = (ushort)q16[2 * d] | q16[2 * d + 1] << 16;
        }
        fixed (int* pp = pairs)
        fixed (float* ps = scales, pl = logits, pqs = qScale)
        fixed (sbyte* pk = sketch)
        {
            var job = new LogitsJob { Pairs = pp, QScale = pqs, K = pk, Scales = ps, Out = pl, From = from, To = to, Softmax = softmax, Bits = bits, Heads = heads, Group = group, HeadDim = headDim, Blocks = Blocks(capacity) };
            long work = (long)heads * n * headDim;
            KernelThreadPool.Shared.Run(&LogitsUnit, &job, (heads + 3) / 4, work < 1 << 14 ? 1 : threads);
        }
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
        public int* Pairs;
        public float* QScale, Scales, Out;
        public sbyte* K;
        public int From, To, Heads, Group, HeadDim, Blocks, Bits;
        public bool Softmax;
    }

    /// <summary>Heads 4u.. (split at K/V group edges).</summary>
    static void LogitsUnit(void* ctx, int u)
    {
        var j = (LogitsJob*)ctx;
        for (int h = 4 * u; h < Math.Min(4 * u + 4, j->Heads);)
        {
            int m = SelectedAttention.UnitRun(u, h, j->Heads, j->Group);
            ScoreBlocks(j, h, m);
            if (j->Softmax)
                for (int x = h; x < h + m; x++)
                {
                    var row = new Span<float>(j->Out + (long)x * (j->To - j->From), j->To - j->From);
                    Ops.Scale(row, 1f / Ops.ExpMinusMax(row));
                }
            h += m;
        }
    }

    /// <summary>Scores of m heads h.. of one K/V head over every block of [From, To): each row of 16 positions × 2
    /// channels widened to int16 once, then one multiply-add of pairs per head.</summary>
    static void ScoreBlocks(LogitsJob* j, int h, int m)
    {
        int hd = j->HeadDim, half = hd / 2, kvHead = h / j->Group, n = j->To - j->From;
        int* q = j->Pairs + h * half;
        float* dst = j->Out + (long)h * n;
        float* lanes = stackalloc float[4 * B];
        for (int b = j->From / B; b < (j->To + B - 1) / B; b++)
        {
            sbyte* kb = j->K + ((long)kvHead * j->Blocks + b) * hd * B * j->Bits / 8;
            Vector512<int> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int d = 0; d < half; d++)
            {
                Vector512<short> row;
                if (j->Bits == 8) row = Avx512BW.ConvertToVector512Int16(Vector256.Load(kb + d * 2 * B));
                else
                {
                    // One byte per position: low nibble → low int16 of the lane, high nibble → high int16 (both sign-extended).
                    var x = Avx512F.ConvertToVector512Int32(Vector128.Load(kb + d * B));
                    row = ((Vector512.ShiftRightArithmetic(x << 28, 28) & Vector512.Create(0xFFFF)) | (Vector512.ShiftRightArithmetic(x, 4) << 16)).AsInt16();
                }
                a0 += Avx512BW.MultiplyAddAdjacent(row, Vector512.Create(q[d]).AsInt16());
                if (m > 1) a1 += Avx512BW.MultiplyAddAdjacent(row, Vector512.Create(q[half + d]).AsInt16());
                if (m > 2) a2 += Avx512BW.MultiplyAddAdjacent(row, Vector512.Create(q[2 * half + d]).AsInt16());
                if (m > 3) a3 += Avx512BW.MultiplyAddAdjacent(row, Vector512.Create(q[3 * half + d]).AsInt16());
            }
            var s = Vector512.Load(j->Scales + ((long)kvHead * j->Blocks + b) * B);
            var f0 = Vector512.ConvertToSingle(a0) * (s * j->QScale[h]);
            var f1 = m > 1 ? Vector512.ConvertToSingle(a1) * (s * j->QScale[h + 1]) : default;
            var f2 = m > 2 ? Vector512.ConvertToSingle(a2) * (s * j->QScale[h + 2]) : default;
            var f3 = m > 3 ? Vector512.ConvertToSingle(a3) * (s * j->QScale[h + 3]) : default;
            int p0 = b * B, i0 = p0 - j->From;
            if (p0 >= j->From && p0 + B <= j->To)
            {
                // A whole block inside the range: the scores are the lanes.
                f0.Store(dst + i0);
                if (m > 1) f1.Store(dst + n + i0);
                if (m > 2) f2.Store(dst + 2L * n + i0);
                if (m > 3) f3.Store(dst + 3L * n + i0);
                continue;
            }
            f0.Store(lanes);
            if (m > 1) f1.Store(lanes + B);
            if (m > 2) f2.Store(lanes + 2 * B);
            if (m > 3) f3.Store(lanes + 3 * B);
            for (int l = Math.Max(0, j->From - p0); l < Math.Min(B, j->To - p0); l++)
                for (int x = 0; x < m; x++) dst[(long)x * n + i0 + l] = lanes[x * B + l];
        }
    }
}
