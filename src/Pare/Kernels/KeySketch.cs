using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pare.Kernels;

/// <summary>
/// An int8 copy of a blocked F32 K cache for scoring every cached position (TokenSelect's selection pass): the same
/// layout as <see cref="BlockedAttention"/>'s K, one signed byte per value, K[kvHead][block][d][16 positions], and one
/// scale per (K/V head, position), max|k| / 127 over the head's row. A quarter of F32 K's bytes (plus 4 bytes per row
/// of scales): the pass over every position is memory-bound, so it reads about a quarter of the time.
/// The <c>*Reference</c> methods are the scalar definitions the vector paths are tested against.
/// </summary>
public static unsafe class KeySketch
{
    const int B = BlockedAttention.Block;

    static int Blocks(int capacity) => (capacity + B - 1) / B;

    /// <summary>Scales a sketch of <paramref name="capacity"/> positions needs: [kvHead][position], padded to whole blocks.</summary>
    public static long ScaleCount(int capacity, int kvHeads) => (long)kvHeads * Blocks(capacity) * B;

    /// <summary>
    /// Quantizes the 16-position blocks holding positions [from, to) of every K/V head of <paramref name="kBlocks"/> (a
    /// blocked cache of <paramref name="capacity"/> positions) into <paramref name="sketch"/> (same layout, as bytes) and
    /// <paramref name="scales"/>; q = round-to-nearest-even(k / scale), scale = max|k| / 127 (0 for a zero row).
    /// </summary>
    public static void Quantize(ReadOnlySpan<float> kBlocks, int capacity, int kvHeads, int headDim, int from, int to, Span<sbyte> sketch, Span<float> scales)
    {
        Validate(kBlocks, capacity, kvHeads, headDim, from, to, sketch, scales);
        if (!Vector512.IsHardwareAccelerated || !Avx512F.IsSupported)
        {
            QuantizeReference(kBlocks, capacity, kvHeads, headDim, from, to, sketch, scales);
            return;
        }
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
                    var inv = Vector512.ConditionalSelect(Vector512.GreaterThan(max, Vector512<float>.Zero), Vector512.Create(127f) / max, Vector512<float>.Zero);
                    (max / Vector512.Create(127f)).Store(s + ((long)h * blocks + b) * B);
                    for (int d = 0; d < headDim; d++)
                        Avx512F.ConvertToVector128SByteWithSaturation(Avx512F.ConvertToVector512Int32(Vector512.Load(k + at + d * B) * inv)).Store(q + at + d * B);
                }
        }
    }

    /// <summary>The scalar reference of <see cref="Quantize"/>.</summary>
    public static void QuantizeReference(ReadOnlySpan<float> kBlocks, int capacity, int kvHeads, int headDim, int from, int to, Span<sbyte> sketch, Span<float> scales)
    {
        Validate(kBlocks, capacity, kvHeads, headDim, from, to, sketch, scales);
        int blocks = Blocks(capacity);
        for (int h = 0; h < kvHeads; h++)
            for (int p = from / B * B; p < (to + B - 1) / B * B; p++)
            {
                long at = BlockedAttention.Index(capacity, headDim, h, p, 0);
                float max = 0;
                for (int d = 0; d < headDim; d++) max = Math.Max(max, Math.Abs(kBlocks[(int)(at + d * B)]));
                float inv = max > 0 ? 127f / max : 0f;
                scales[h * blocks * B + p] = max / 127f;
                for (int d = 0; d < headDim; d++) sketch[(int)(at + d * B)] = (sbyte)Math.Clamp(MathF.Round(kBlocks[(int)(at + d * B)] * inv), -128, 127);
            }
    }

    static void Validate(ReadOnlySpan<float> kBlocks, int capacity, int kvHeads, int headDim, int from, int to, ReadOnlySpan<sbyte> sketch, ReadOnlySpan<float> scales)
    {
        long floats = BlockedAttention.CacheFloats(capacity, kvHeads, headDim);
        if (from < 0 || to > capacity || from > to) throw new ArgumentOutOfRangeException(nameof(from), $"positions [{from}, {to}) outside the cache of {capacity}");
        if (kBlocks.Length < floats || sketch.Length < floats || scales.Length < ScaleCount(capacity, kvHeads)) throw new ArgumentException("the cache, sketch or scales are smaller than the capacity");
    }

    /// <summary>
    /// Approximate scaled scores q_h·K(p)/√headDim of every query head h for the positions [from, to) from the sketch:
    /// logits[h * (to - from) + i]. Heads of one K/V group share each converted block row (up to four at a time); units
    /// run on up to <paramref name="threads"/> threads. As <see cref="SelectedAttention.Logits"/> on the F32 cache.
    /// </summary>
    public static void Logits(ReadOnlySpan<float> q, int heads, int kvHeads, int headDim, ReadOnlySpan<sbyte> sketch, ReadOnlySpan<float> scales,
        int capacity, int from, int to, Span<float> logits, int threads)
    {
        int n = to - from, group = heads / kvHeads;
        if (n <= 0) return;
        if (from < 0 || to > capacity || logits.Length < (long)heads * n || q.Length < heads * headDim || heads % kvHeads != 0) throw new ArgumentException("bad range, heads or buffers");
        if (sketch.Length < BlockedAttention.CacheFloats(capacity, kvHeads, headDim) || scales.Length < ScaleCount(capacity, kvHeads)) throw new ArgumentException("the sketch or scales are smaller than the capacity");
        if (!Vector512.IsHardwareAccelerated || !Avx512F.IsSupported || headDim % B != 0)
        {
            LogitsReference(q, heads, kvHeads, headDim, sketch, scales, capacity, from, to, logits);
            return;
        }
        fixed (float* pq = q, ps = scales, pl = logits)
        fixed (sbyte* pk = sketch)
        {
            var job = new LogitsJob { Q = pq, K = pk, Scales = ps, Out = pl, From = from, To = to, Heads = heads, Group = group, HeadDim = headDim, Blocks = Blocks(capacity), Scale = 1f / MathF.Sqrt(headDim) };
            long work = (long)heads * n * headDim;
            KernelThreadPool.Shared.Run(&LogitsUnit, &job, (heads + 3) / 4, work < 1 << 14 ? 1 : threads);
        }
    }

    /// <summary>The scalar reference of <see cref="Logits"/>: scale(p) · Σ_d q_d · k8(p, d) / √headDim.</summary>
    public static void LogitsReference(ReadOnlySpan<float> q, int heads, int kvHeads, int headDim, ReadOnlySpan<sbyte> sketch, ReadOnlySpan<float> scales,
        int capacity, int from, int to, Span<float> logits)
    {
        int n = to - from, group = heads / kvHeads, blocks = Blocks(capacity);
        float scale = 1f / MathF.Sqrt(headDim);
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < n; i++)
            {
                int kvHead = h / group, p = from + i;
                long at = BlockedAttention.Index(capacity, headDim, kvHead, p, 0);
                float sum = 0;
                for (int d = 0; d < headDim; d++) sum += q[h * headDim + d] * sketch[(int)(at + d * B)];
                logits[h * n + i] = sum * scales[kvHead * blocks * B + p] * scale;
            }
    }

    struct LogitsJob
    {
        public float* Q, Scales, Out;
        public sbyte* K;
        public int From, To, Heads, Group, HeadDim, Blocks;
        public float Scale;
    }

    /// <summary>Heads 4u.. (split at K/V group edges).</summary>
    static void LogitsUnit(void* ctx, int u)
    {
        var j = (LogitsJob*)ctx;
        for (int h = 4 * u; h < Math.Min(4 * u + 4, j->Heads);)
        {
            int m = 1;
            while (m < 4 - (h - 4 * u) && h + m < j->Heads && (h + m) / j->Group == h / j->Group) m++;
            ScoreBlocks(j, h, m);
            h += m;
        }
    }

    /// <summary>Scores of m heads h.. of one K/V head over every block of [From, To): each int8 row converted once for all m.</summary>
    static void ScoreBlocks(LogitsJob* j, int h, int m)
    {
        int hd = j->HeadDim, kvHead = h / j->Group, n = j->To - j->From;
        float* q = j->Q + h * hd;
        float* dst = j->Out + (long)h * n;
        float* lanes = stackalloc float[4 * B];
        for (int b = j->From / B; b < (j->To + B - 1) / B; b++)
        {
            sbyte* kb = j->K + ((long)kvHead * j->Blocks + b) * hd * B;
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int d = 0; d < hd; d++)
            {
                var row = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(kb + d * B)));
                a0 += Vector512.Create(q[d]) * row;
                if (m > 1) a1 += Vector512.Create(q[hd + d]) * row;
                if (m > 2) a2 += Vector512.Create(q[2 * hd + d]) * row;
                if (m > 3) a3 += Vector512.Create(q[3 * hd + d]) * row;
            }
            var s = Vector512.Load(j->Scales + ((long)kvHead * j->Blocks + b) * B) * j->Scale;
            int p0 = b * B, i0 = p0 - j->From;
            if (p0 >= j->From && p0 + B <= j->To)
            {
                // A whole block inside the range: the scores are the lanes.
                (a0 * s).Store(dst + i0);
                if (m > 1) (a1 * s).Store(dst + n + i0);
                if (m > 2) (a2 * s).Store(dst + 2L * n + i0);
                if (m > 3) (a3 * s).Store(dst + 3L * n + i0);
                continue;
            }
            (a0 * s).Store(lanes);
            if (m > 1) (a1 * s).Store(lanes + B);
            if (m > 2) (a2 * s).Store(lanes + 2 * B);
            if (m > 3) (a3 * s).Store(lanes + 3 * B);
            for (int l = Math.Max(0, j->From - p0); l < Math.Min(B, j->To - p0); l++)
                for (int x = 0; x < m; x++) dst[(long)x * n + i0 + l] = lanes[x * B + l];
        }
    }
}
