using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pare.Kernels;

/// <summary>
/// Compressed KV cache rows. K keeps <see cref="BlockedAttention"/>'s layout (K[kvHead][block][d][16 positions]) so that
/// a layer's first P positions decode with contiguous reads into a float copy in that layout; V stays position-major.
/// F16: every value rounded to half (round to nearest even), as llama.cpp's F16 cache stores it.
/// Q8_0: every position's row of a head cut into groups of 32 values (llama.cpp's q8_0 blocks along the row): scale
/// d = fp16(max|x| / 127), q = round(x / d) half away from zero (ggml's quantize_row_q8_0_ref). K's int8 values sit in
/// the blocked layout with their scales beside them, per (head, block, group, position); V rows are plain Q8_0 blocks.
/// The <c>*Reference</c> methods are the scalar definitions the fast paths are tested against.
/// </summary>
public static unsafe class KvQuant
{
    const int B = BlockedAttention.Block, Group = 32, Q8Bytes = 34;

    /// <summary>Bytes of a V row of <paramref name="kvd"/> values in Q8_0.</summary>
    public static int Q8RowBytes(int kvd) => kvd / Group * Q8Bytes;

    /// <summary>Scales a Q8_0 blocked K cache needs for <paramref name="capacity"/> positions (one per position and group).</summary>
    public static long KScaleCount(int capacity, int kvHeads, int headDim) => BlockedAttention.CacheFloats(capacity, kvHeads, headDim) / Group;

    // ---- F16 ----

    /// <summary>Stores k rows (n, kvHeads * headDim) as halves at positions pos0.. of a blocked cache.</summary>
    public static void WriteKF16(ReadOnlySpan<float> k, int n, int kvHeads, int headDim, Span<ushort> kBlocks, int capacity, int pos0)
    {
        for (int t = 0; t < n; t++)
            for (int h = 0; h < kvHeads; h++)
            {
                var row = k.Slice((t * kvHeads + h) * headDim, headDim);
                long at = BlockedAttention.Index(capacity, headDim, h, pos0 + t, 0);
                for (int d = 0; d < headDim; d++) kBlocks[(int)(at + d * B)] = Fp16.FromFloat(row[d]);
            }
    }

    /// <summary>Decodes the blocks holding the first <paramref name="positions"/> positions of every head.</summary>
    public static void ReadKF16(ReadOnlySpan<ushort> kBlocks, int kvHeads, int headDim, int capacity, int positions, Span<float> dst)
    {
        long perHead = BlockedAttention.CacheFloats(capacity, 1, headDim);
        int used = (positions + B - 1) / B * B * headDim;
        for (int h = 0; h < kvHeads; h++)
            HalfToFloat(kBlocks.Slice((int)(h * perHead), used), dst.Slice((int)(h * perHead), used));
    }

    /// <summary>Rounds V rows to halves.</summary>
    public static void WriteF16(ReadOnlySpan<float> src, Span<ushort> dst)
    {
        for (int i = 0; i < src.Length; i++) dst[i] = Fp16.FromFloat(src[i]);
    }

    /// <summary>Exact half-to-float conversion (subnormals, infinities and NaN included).</summary>
    public static void HalfToFloat(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("dst is too short", nameof(dst));
        int i = 0;
        fixed (ushort* s = src)
        fixed (float* d = dst)
        {
            if (Vector512.IsHardwareAccelerated && Avx512F.IsSupported)
                for (; i + 16 <= src.Length; i += 16) Fp16.ToFloatExact16(s + i).Store(d + i);
            for (; i < src.Length; i++) d[i] = Fp16.ToFloat(s[i]);
        }
    }

    // ---- Q8_0 ----

    /// <summary>Quantizes k rows (n, kvHeads * headDim) into a blocked int8 cache and its scales (headDim a multiple of 32).</summary>
    public static void WriteKQ8(ReadOnlySpan<float> k, int n, int kvHeads, int headDim, Span<sbyte> kBlocks, Span<float> scales, int capacity, int pos0)
    {
        Span<sbyte> q = stackalloc sbyte[Group];
        for (int t = 0; t < n; t++)
            for (int h = 0; h < kvHeads; h++)
            {
                var row = k.Slice((t * kvHeads + h) * headDim, headDim);
                int p = pos0 + t;
                for (int g = 0; g < headDim / Group; g++)
                {
                    float d = QuantizeGroup(row.Slice(g * Group, Group), q);
                    long at = BlockedAttention.Index(capacity, headDim, h, p, g * Group);
                    for (int i = 0; i < Group; i++) kBlocks[(int)(at + i * B)] = q[i];
                    scales[(int)ScaleIndex(capacity, headDim, h, p, g)] = d;
                }
            }
    }

    /// <summary>Copies every head's int8 K values and scales at position <paramref name="from"/> to <paramref name="to"/> (tree compaction).</summary>
    public static void MoveKQ8(Span<sbyte> kBlocks, Span<float> scales, int capacity, int kvHeads, int headDim, int from, int to)
    {
        for (int h = 0; h < kvHeads; h++)
        {
            for (int d = 0; d < headDim; d++)
                kBlocks[(int)BlockedAttention.Index(capacity, headDim, h, to, d)] = kBlocks[(int)BlockedAttention.Index(capacity, headDim, h, from, d)];
            for (int g = 0; g < headDim / Group; g++)
                scales[(int)ScaleIndex(capacity, headDim, h, to, g)] = scales[(int)ScaleIndex(capacity, headDim, h, from, g)];
        }
    }

    /// <summary>Index of the scale of (head, position, group) in a Q8_0 blocked K cache: [head][block][group][16].</summary>
    static long ScaleIndex(int capacity, int headDim, int kvHead, int position, int group) =>
        (((long)kvHead * ((capacity + B - 1) / B) + position / B) * (headDim / Group) + group) * B + position % B;

    /// <summary>Decodes the blocks holding the first <paramref name="positions"/> positions of every head.</summary>
    public static void ReadKQ8(ReadOnlySpan<sbyte> kBlocks, ReadOnlySpan<float> scales, int kvHeads, int headDim, int capacity, int positions, Span<float> dst)
    {
        int blocks = (positions + B - 1) / B, capBlocks = (capacity + B - 1) / B, groups = headDim / Group;
        fixed (sbyte* kq = kBlocks)
        fixed (float* sc = scales, o = dst)
        {
            bool fast = Vector512.IsHardwareAccelerated && Avx512F.IsSupported;
            for (int h = 0; h < kvHeads; h++)
                for (int b = 0; b < blocks; b++)
                {
                    long blk = (long)h * capBlocks + b;
                    sbyte* src = kq + blk * headDim * B;
                    float* dstBlock = o + blk * headDim * B;
                    for (int g = 0; g < groups; g++)
                    {
                        float* s = sc + (blk * groups + g) * B;
                        if (fast)
                        {
                            var sv = Vector512.Load(s);
                            for (int d = g * Group; d < (g + 1) * Group; d++)
                                (Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(Vector128.Load(src + d * B))) * sv).Store(dstBlock + d * B);
                        }
                        else
                            for (int d = g * Group; d < (g + 1) * Group; d++)
                                for (int l = 0; l < B; l++) dstBlock[d * B + l] = src[d * B + l] * s[l];
                    }
                }
        }
    }

    /// <summary>Quantizes V rows (a whole number of 32-value groups) into Q8_0 blocks.</summary>
    public static void WriteQ8(ReadOnlySpan<float> src, Span<byte> dst)
    {
        Span<sbyte> q = stackalloc sbyte[Group];
        for (int g = 0; g < src.Length / Group; g++)
        {
            float d = QuantizeGroup(src.Slice(g * Group, Group), q);
            var block = dst.Slice(g * Q8Bytes, Q8Bytes);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(block, Fp16.FromFloat(d));
            for (int i = 0; i < Group; i++) block[2 + i] = (byte)q[i];
        }
    }

    /// <summary>Decodes Q8_0 blocks into <c>dst.Length</c> values.</summary>
    public static void ReadQ8(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int groups = dst.Length / Group;
        if (src.Length < groups * Q8Bytes) throw new ArgumentException("src is too short", nameof(src));
        fixed (byte* s = src)
        fixed (float* o = dst)
        {
            bool fast = Vector512.IsHardwareAccelerated && Avx512F.IsSupported;
            for (int g = 0; g < groups; g++)
            {
                byte* blk = s + g * Q8Bytes;
                float d = Fp16.ToFloat(*(ushort*)blk);
                if (fast)
                {
                    var dv = Vector512.Create(d);
                    (Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)blk + 2))) * dv).Store(o + g * Group);
                    (Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)blk + 18))) * dv).Store(o + g * Group + 16);
                }
                else
                    for (int i = 0; i < Group; i++) o[g * Group + i] = (sbyte)blk[2 + i] * d;
            }
        }
    }

    /// <summary>
    /// ggml's quantize_row_q8_0_ref on one group of 32: d = max|x| / 127, q = round(x / d) half away from zero. Returns
    /// the scale as stored (rounded to fp16), which is what dequantization multiplies by.
    /// </summary>
    public static float QuantizeGroup(ReadOnlySpan<float> x, Span<sbyte> q)
    {
        float amax = 0;
        foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
        float d = amax / 127, id = d != 0 ? 1 / d : 0;
        for (int i = 0; i < x.Length; i++) q[i] = (sbyte)MathF.Round(x[i] * id, MidpointRounding.AwayFromZero);
        return Fp16.ToFloat(Fp16.FromFloat(d));
    }

    // ---- references ----

    /// <summary>What a cached value reads back as, one value at a time: the definition the fast paths are tested against.</summary>
    public static void RoundTripReference(KvValueType type, ReadOnlySpan<float> row, Span<float> dst)
    {
        switch (type)
        {
            case KvValueType.F32: row.CopyTo(dst); break;
            case KvValueType.F16: for (int i = 0; i < row.Length; i++) dst[i] = (float)(Half)row[i]; break;
            case KvValueType.Q8_0:
                for (int g = 0; g < row.Length / Group; g++)
                {
                    var x = row.Slice(g * Group, Group);
                    float amax = 0;
                    for (int i = 0; i < Group; i++) amax = Math.Max(amax, Math.Abs(x[i]));
                    float d = amax / 127f;
                    float stored = (float)(Half)d;
                    for (int i = 0; i < Group; i++)
                        dst[g * Group + i] = (d == 0 ? 0 : (float)Math.Round(x[i] * (1f / d), MidpointRounding.AwayFromZero)) * stored;
                }
                break;
        }
    }
}

/// <summary>How the KV cache stores each value.</summary>
public enum KvValueType
{
    /// <summary>4 bytes per value, exact.</summary>
    F32,
    /// <summary>2 bytes per value, rounded to half precision.</summary>
    F16,
    /// <summary>34 bytes per 32 values (1.0625 bytes per value): llama.cpp's q8_0.</summary>
    Q8_0,
}
