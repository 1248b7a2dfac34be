using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pare.Kernels.Formats;

/// <summary>
/// Q4_K super-blocks of 256 values (144 bytes): f16 d, f16 dmin, 12 bytes packing eight 6-bit scales and eight
/// 6-bit mins, then 128 bytes of 4-bit q. Sub-block j (32 values) has value = d * sc[j] * q - dmin * m[j].
/// The 64 values of sub-blocks 2k and 2k+1 share the 32 bytes qs[32k..32k+32): low nibbles are sub-block 2k,
/// high nibbles sub-block 2k+1.
/// </summary>
internal static class Q4KFormat
{
    public const int BlockSize = 256, BlockBytes = 144;

    /// <summary>ggml's get_scale_min_k4: sub-blocks 0-3 use the low 6 bits of bytes 0-7; 4-7 use nibbles of bytes 8-11 plus the top 2 bits of bytes 0-7.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ScaleMin(ReadOnlySpan<byte> s, int j, out int sc, out int m)
    {
        if (j < 4) { sc = s[j] & 63; m = s[j + 4] & 63; }
        else { sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4); m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4); }
    }

    public static void DequantRow(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / BlockSize; b++)
        {
            var block = src.Slice(b * BlockBytes, BlockBytes);
            float d = Fp16.ToFloat(BinaryPrimitives.ReadUInt16LittleEndian(block));
            float dmin = Fp16.ToFloat(BinaryPrimitives.ReadUInt16LittleEndian(block[2..]));
            var scales = block.Slice(4, 12);
            var qs = block.Slice(16, 128);
            var y = dst.Slice(b * BlockSize, BlockSize);
            for (int k = 0; k < 4; k++)
            {
                ScaleMin(scales, 2 * k, out int sc0, out int m0);
                ScaleMin(scales, 2 * k + 1, out int sc1, out int m1);
                float d0 = d * sc0, min0 = dmin * m0, d1 = d * sc1, min1 = dmin * m1;
                for (int l = 0; l < 32; l++)
                {
                    y[64 * k + l] = d0 * (qs[32 * k + l] & 0xF) - min0;
                    y[64 * k + 32 + l] = d1 * (qs[32 * k + l] >> 4) - min1;
                }
            }
        }
    }

    /// <summary>
    /// A simple (not ggml's iterative) quantizer, good enough for tests: per sub-block the range [min(0, lo), hi] is
    /// split into 15 steps; scales and mins are then quantized to 6 bits against the super-block maxima.
    /// </summary>
    public static byte[] Quantize(ReadOnlySpan<float> src)
    {
        var dst = new byte[src.Length / BlockSize * BlockBytes];
        Span<float> scale = stackalloc float[8], offset = stackalloc float[8];
        Span<int> sc = stackalloc int[8], mn = stackalloc int[8];
        Span<byte> q = stackalloc byte[BlockSize];
        for (int b = 0; b < src.Length / BlockSize; b++)
        {
            var x = src.Slice(b * BlockSize, BlockSize);
            var block = dst.AsSpan(b * BlockBytes, BlockBytes);
            for (int j = 0; j < 8; j++)
            {
                float lo = 0, hi = float.MinValue;
                foreach (float v in x.Slice(32 * j, 32)) { lo = MathF.Min(lo, v); hi = MathF.Max(hi, v); }
                scale[j] = MathF.Max(0, hi - lo) / 15;
                offset[j] = -lo;
            }
            float maxScale = 0, maxOffset = 0;
            for (int j = 0; j < 8; j++) { maxScale = MathF.Max(maxScale, scale[j]); maxOffset = MathF.Max(maxOffset, offset[j]); }
            ushort dh = Fp16.FromFloat(maxScale / 63), dminh = Fp16.FromFloat(maxOffset / 63);
            float d = Fp16.ToFloat(dh), dmin = Fp16.ToFloat(dminh);
            for (int j = 0; j < 8; j++)
            {
                // Round the scale up and the offset down so the range still covers the sub-block.
                sc[j] = d == 0 ? 0 : Math.Clamp((int)MathF.Ceiling(scale[j] / d), 0, 63);
                mn[j] = dmin == 0 ? 0 : Math.Clamp((int)MathF.Round(offset[j] / dmin), 0, 63);
                float s = d * sc[j], o = dmin * mn[j];
                for (int l = 0; l < 32; l++)
                    q[32 * j + l] = s == 0 ? (byte)0 : (byte)Math.Clamp((int)MathF.Round((x[32 * j + l] + o) / s), 0, 15);
            }
            BinaryPrimitives.WriteUInt16LittleEndian(block, dh);
            BinaryPrimitives.WriteUInt16LittleEndian(block[2..], dminh);
            var scales = block.Slice(4, 12);
            for (int j = 0; j < 8; j++)
            {
                if (j < 4) { scales[j] = (byte)sc[j]; scales[j + 4] = (byte)mn[j]; }
                else
                {
                    scales[j + 4] = (byte)((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
                    scales[j - 4] |= (byte)((sc[j] >> 4) << 6);
                    scales[j] |= (byte)((mn[j] >> 4) << 6);
                }
            }
            var qs = block.Slice(16, 128);
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 32; l++)
                    qs[32 * k + l] = (byte)(q[64 * k + l] | (q[64 * k + 32 + l] << 4));
        }
        return dst;
    }
}

/// <summary>
/// Q4_K rows against Q8_K activations (<see cref="Q8K"/>, as llama.cpp): per sub-block j the dot is
/// d * dx * sc[j] * dot(q, xq) - dmin * dx * m[j] * sum(xq), all integer inside a super-block. One 64-byte load of qs
/// holds four sub-blocks (low nibbles: 2k, 2k + 2; high: 2k + 1, 2k + 3); Prepare stores x in that order, so
/// vpmaddubsw (unsigned nibble times signed x) pairs them directly, and vpmaddwd applies the scales, which are
/// unpacked once per super-block with a few SIMD ops.
/// </summary>
internal readonly unsafe struct Q4KKernel : IRowKernel, IInt8Weights
{
    public static int PrepFloats(int cols) => Q8K.PrepFloats(cols);

    public static void Prepare(float* x, int cols, float* prep) => Q8K.Quantize(x, cols, (byte*)prep, q4kOrder: true);

    /// <summary>vpermw indices: words 0-15 pick scale a, words 16-31 scale b.</summary>
    static Vector512<short> Index(int a, int b) =>
        Vector512.Create(Vector256.Create((short)a), Vector256.Create((short)b));

    /// <summary>
    /// For four block heads (d, dmin, 12 bytes of scales, one per 128-bit lane): the 16 bytes after d and dmin as 16 int16
    /// per head, eight 6-bit scales then eight 6-bit mins (ggml's utmp trick, in SIMD); heads 0 and 1 in the first
    /// result, 2 and 3 in the second.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static (Vector512<short> Heads01, Vector512<short> Heads23) ScalesAndMins4(Vector512<uint> heads, in HeadConsts c)
    {
        var a = Avx512F.Shuffle(heads, 0b11_10_11_01); // u0, u2, u1, u2
        var b = Avx512F.Shuffle(heads, 0b10_10_01_01); // u0, u0, u1, u1
        var sm = (Avx512F.ShiftRightLogicalVariable(a, c.Shift) & c.Low) | (Vector512.ShiftRightLogical(b, 2) & c.High);
        return (Avx512BW.ConvertToVector512Int16(sm.GetLower().AsByte()), Avx512BW.ConvertToVector512Int16(sm.GetUpper().AsByte()));
    }

    /// <summary>The per-lane constants of <see cref="ScalesAndMins4"/>, built once per call (the JIT does not hoist them).</summary>
    internal struct HeadConsts
    {
        public Vector512<uint> Shift, Low, High;

        public static HeadConsts Create() => new()
        {
            Shift = Lanes(Vector128.Create(0u, 0, 0, 4)),
            Low = Lanes(Vector128.Create(0x3f3f3f3fu, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f)),
            High = Lanes(Vector128.Create(0u, 0x30303030, 0, 0x30303030)),
        };
    }

    /// <summary>The high nibble of each byte: one vgf2p8affineqb (bits 4-7 to 0-3) where available, else shift and mask.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<byte> HighNibbles(Vector512<byte> v) => Gfni.V512.IsSupported
        ? Gfni.V512.GaloisFieldAffineTransform(v, Vector512.Create(0x1020408000000000ul).AsByte(), 0)
        : Avx512BW.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & Vector512.Create((byte)0xF);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<uint> Lanes(Vector128<uint> v) => Vector512.Create(Vector256.Create(v, v), Vector256.Create(v, v));

    /// <summary>Index vectors of one call, built once (the JIT does not fold them into constants).</summary>
    struct Indices
    {
        public Vector512<short> I0, I1, I2, I3;
    }

    /// <summary>
    /// One super-block of one row: acc += d * dx * (sum of scale * q * x) as 16 lanes. sc: the row's scales (vpermw
    /// table, see <see cref="ScalesAndMins4"/>; ix picks its half); d: its d * dx (converted for four rows at once by
    /// <see cref="Dot4"/>, which also applies the mins of all four rows at once).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Block(byte* p, Vector512<sbyte> x0, Vector512<sbyte> x1, Vector512<sbyte> x2, Vector512<sbyte> x3,
        float* d, Vector512<short> sc, in Indices ix, Vector512<float> acc)
    {
        var mask = Vector512.Create((byte)0xF);
        var qa = Vector512.Load(p + 16);
        var qb = Vector512.Load(p + 80);
        var p0 = Avx512BW.MultiplyAddAdjacent(qa & mask, x0);
        var p1 = Avx512BW.MultiplyAddAdjacent(HighNibbles(qa), x1);
        var p2 = Avx512BW.MultiplyAddAdjacent(qb & mask, x2);
        var p3 = Avx512BW.MultiplyAddAdjacent(HighNibbles(qb), x3);
        var s = (Avx512BW.MultiplyAddAdjacent(p0, Avx512BW.PermuteVar32x16(sc, ix.I0))
              + Avx512BW.MultiplyAddAdjacent(p1, Avx512BW.PermuteVar32x16(sc, ix.I1)))
              + (Avx512BW.MultiplyAddAdjacent(p2, Avx512BW.PermuteVar32x16(sc, ix.I2))
              + Avx512BW.MultiplyAddAdjacent(p3, Avx512BW.PermuteVar32x16(sc, ix.I3)));
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(s), Vector512.Create(*d), acc);
    }

    public static void Dot4(byte* r0, byte* r1, byte* r2, byte* r3, float* x, float* prep, int cols, float* y)
    {
        // Rows 0 and 2 use the first half of their scale table, rows 1 and 3 the second.
        var ix = new Indices { I0 = Index(0, 2), I1 = Index(1, 3), I2 = Index(4, 6), I3 = Index(5, 7) };
        var jx = new Indices { I0 = Index(16, 18), I1 = Index(17, 19), I2 = Index(20, 22), I3 = Index(21, 23) };
        var firsts = Vector512.Create(0u, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
        // The mins of the four rows (qwords 2, 3, 6, 7 of each table) and their dmin * dx, four lanes per row.
        var minsOf4 = Vector512.Create(2ul, 3, 6, 7, 10, 11, 14, 15);
        var dminOf4 = Vector512.Create(1, 1, 1, 1, 3, 3, 3, 3, 5, 5, 5, 5, 7, 7, 7, 7);
        var hc = HeadConsts.Create();
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, mins = default;
        float* ds = stackalloc float[8];
        int nb = cols / Q4KFormat.BlockSize;
        byte* xq = (byte*)prep;
        for (int b = 0; b < nb; b++, xq += Q8K.BlockBytes)
        {
            nint o = b * Q4KFormat.BlockBytes;
            var x0 = Vector512.Load((sbyte*)xq);
            var x1 = Vector512.Load((sbyte*)xq + 64);
            var x2 = Vector512.Load((sbyte*)xq + 128);
            var x3 = Vector512.Load((sbyte*)xq + 192);
            var xsums = Vector128.Load((short*)(xq + Q8K.SumsOffset)).ToVector256Unsafe().ToVector512Unsafe().AsUInt64();
            var heads = Avx512F.InsertVector128(Avx512F.InsertVector128(Avx512F.InsertVector128(
                Vector128.Load((uint*)(r0 + o)).ToVector256Unsafe().ToVector512Unsafe(), Vector128.Load((uint*)(r1 + o)), 1),
                Vector128.Load((uint*)(r2 + o)), 2), Vector128.Load((uint*)(r3 + o)), 3);
            var (t01, t23) = ScalesAndMins4(heads, hc);
            // d and dmin of the four rows (the first 4 bytes of each head) converted at once, times dx.
            var dd = Avx2.ConvertToVector256Int32(Avx512F.PermuteVar16x32(heads, firsts).GetLower().GetLower().AsUInt16());
            var dv = Fp16.ToFloatFast8(dd) * Vector256.Create(*(float*)(xq + Q8K.ScaleOffset));
            dv.Store(ds);
            // Mins: one vpmaddwd for the four rows against the 8 sums of x (repeated per 128-bit lane).
            var m4 = Avx512F.PermuteVar8x64x2(t01.AsUInt64(), minsOf4, t23.AsUInt64()).AsInt16();
            var xs4 = Avx512F.Shuffle4x128(xsums, xsums, 0).AsInt16();
            mins = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(m4, xs4)),
                                              Avx512F.PermuteVar16x32(dv.ToVector512Unsafe(), dminOf4), mins);
            a0 = Block(r0 + o, x0, x1, x2, x3, ds, t01, ix, a0);
            a1 = Block(r1 + o, x0, x1, x2, x3, ds + 2, t01, jx, a1);
            a2 = Block(r2 + o, x0, x1, x2, x3, ds + 4, t23, ix, a2);
            a3 = Block(r3 + o, x0, x1, x2, x3, ds + 6, t23, jx, a3);
        }
        y[0] = Vector512.Sum(a0) - Vector128.Sum(mins.GetLower().GetLower());
        y[1] = Vector512.Sum(a1) - Vector128.Sum(mins.GetLower().GetUpper());
        y[2] = Vector512.Sum(a2) - Vector128.Sum(mins.GetUpper().GetLower());
        y[3] = Vector512.Sum(a3) - Vector128.Sum(mins.GetUpper().GetUpper());
    }

    public static int BlockBytes => Q4KFormat.BlockBytes;
    public static int ScaleCount => 8;
    public static bool SignedWeights => false;
    public static bool Mins => true;

    /// <summary>Integer prefill (<see cref="Int8Gemm"/>): nibbles to bytes (natural order), the 6-bit scales and mins.</summary>
    public static void Unpack(byte* block, sbyte* q, short* scales, short* mins, out float d, out float dmin)
    {
        var mask = Vector256.Create((byte)0xF);
        for (int k = 0; k < 4; k++)
        {
            var v = Vector256.Load(block + 16 + 32 * k);
            (v & mask).Store((byte*)q + 64 * k);
            (Vector256.ShiftRightLogical(v, 4) & mask).Store((byte*)q + 64 * k + 32);
        }
        var (sm, _) = ScalesAndMins4(Lanes(Vector128.Load((uint*)block)), HeadConsts.Create());
        sm.GetLower().GetLower().Store(scales);
        sm.GetLower().GetUpper().Store(mins);
        d = Fp16.ToFloatFast(*(ushort*)block);
        dmin = Fp16.ToFloatFast(*(ushort*)(block + 2));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void ScaleMin(byte* s, int j, out int sc, out int m)
    {
        if (j < 4) { sc = s[j] & 63; m = s[j + 4] & 63; }
        else { sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4); m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4); }
    }

    public static void DequantRow(byte* src, float* dst, int cols)
    {
        var mask = Vector512.Create(0xF);
        for (int b = 0; b < cols / 256; b++, src += Q4KFormat.BlockBytes, dst += 256)
        {
            float d = Fp16.ToFloatFast(*(ushort*)src), dmin = Fp16.ToFloatFast(*(ushort*)(src + 2));
            byte* s = src + 4, qs = src + 16;
            for (int k = 0; k < 4; k++)
            {
                ScaleMin(s, 2 * k, out int sc0, out int m0);
                ScaleMin(s, 2 * k + 1, out int sc1, out int m1);
                Vector512<float> d0 = Vector512.Create(d * sc0), min0 = Vector512.Create(dmin * m0);
                Vector512<float> d1 = Vector512.Create(d * sc1), min1 = Vector512.Create(dmin * m1);
                var v0 = Avx512F.ConvertToVector512Int32(Vector128.Load(qs + 32 * k));
                var v1 = Avx512F.ConvertToVector512Int32(Vector128.Load(qs + 32 * k + 16));
                float* y = dst + 64 * k;
                (d0 * Vector512.ConvertToSingle(v0 & mask) - min0).Store(y);
                (d0 * Vector512.ConvertToSingle(v1 & mask) - min0).Store(y + 16);
                (d1 * Vector512.ConvertToSingle(Vector512.ShiftRightLogical(v0, 4)) - min1).Store(y + 32);
                (d1 * Vector512.ConvertToSingle(Vector512.ShiftRightLogical(v1, 4)) - min1).Store(y + 48);
            }
        }
    }
}
