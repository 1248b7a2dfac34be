using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pare.Kernels.Formats;

/// <summary>
/// Q6_K super-blocks of 256 values (210 bytes): ql[128] low 4 bits, qh[64] high 2 bits, int8 scales[16] (one per 16
/// values), f16 d; value i = d * scales[i / 16] * (q - 32), q in 0..63.
/// Each half h (128 values) uses ql[64h..], qh[32h..]; for l in 0..31 the byte ql[l] holds values l (low nibble) and
/// l + 64 (high), ql[l + 32] holds l + 32 and l + 96, and qh[l] holds the high bits of l, l + 32, l + 64, l + 96 in
/// bit pairs 0-1, 2-3, 4-5, 6-7.
/// </summary>
internal static class Q6KFormat
{
    public const int BlockSize = 256, BlockBytes = 210;

    public static void DequantRow(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / BlockSize; b++)
        {
            var block = src.Slice(b * BlockBytes, BlockBytes);
            float d = Fp16.ToFloat(BinaryPrimitives.ReadUInt16LittleEndian(block[208..]));
            for (int h = 0; h < 2; h++)
            {
                var ql = block.Slice(64 * h, 64);
                var qh = block.Slice(128 + 32 * h, 32);
                var y = dst.Slice(b * BlockSize + 128 * h, 128);
                for (int l = 0; l < 32; l++)
                {
                    int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    y[l] = d * Scale(block, h, l) * q1;
                    y[l + 32] = d * Scale(block, h, l + 32) * q2;
                    y[l + 64] = d * Scale(block, h, l + 64) * q3;
                    y[l + 96] = d * Scale(block, h, l + 96) * q4;
                }
            }
        }

        static sbyte Scale(ReadOnlySpan<byte> block, int h, int i) => (sbyte)block[192 + 8 * h + i / 16];
    }

    /// <summary>
    /// A simple quantizer (ggml's make_qx_quants without its refinement): per 16 values the largest-magnitude value
    /// m maps to -32, scale = m / -32; the 16 scales are then quantized to int8 against the largest.
    /// </summary>
    public static byte[] Quantize(ReadOnlySpan<float> src)
    {
        var dst = new byte[src.Length / BlockSize * BlockBytes];
        Span<float> scale = stackalloc float[16];
        Span<byte> q = stackalloc byte[BlockSize];
        for (int b = 0; b < src.Length / BlockSize; b++)
        {
            var x = src.Slice(b * BlockSize, BlockSize);
            var block = dst.AsSpan(b * BlockBytes, BlockBytes);
            float maxScale = 0, amaxScale = 0;
            for (int j = 0; j < 16; j++)
            {
                float amax = 0, max = 0;
                foreach (float v in x.Slice(16 * j, 16))
                    if (MathF.Abs(v) > amax) { amax = MathF.Abs(v); max = v; }
                scale[j] = max / -32;
                if (MathF.Abs(scale[j]) > amaxScale) { amaxScale = MathF.Abs(scale[j]); maxScale = scale[j]; }
            }
            // The largest scale maps to -128 as in ggml, so the int8 range is used fully.
            ushort dh = Fp16.FromFloat(maxScale / -128);
            float d = Fp16.ToFloat(dh);
            for (int j = 0; j < 16; j++)
            {
                int sc = d == 0 ? 0 : Math.Clamp((int)MathF.Round(scale[j] / d), -128, 127);
                block[192 + j] = (byte)(sbyte)sc;
                float s = d * sc;
                for (int l = 0; l < 16; l++)
                    q[16 * j + l] = s == 0 ? (byte)32 : (byte)(Math.Clamp((int)MathF.Round(x[16 * j + l] / s), -32, 31) + 32);
            }
            BinaryPrimitives.WriteUInt16LittleEndian(block[208..], dh);
            for (int h = 0; h < 2; h++)
            {
                for (int l = 0; l < 32; l++)
                {
                    int q1 = q[128 * h + l], q2 = q[128 * h + l + 32], q3 = q[128 * h + l + 64], q4 = q[128 * h + l + 96];
                    block[64 * h + l] = (byte)((q1 & 0xF) | ((q3 & 0xF) << 4));
                    block[64 * h + l + 32] = (byte)((q2 & 0xF) | ((q4 & 0xF) << 4));
                    block[128 + 32 * h + l] = (byte)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
                }
            }
        }
        return dst;
    }
}

/// <summary>
/// Q6_K rows: each 16-byte load of ql, ql+32 and qh yields four 16-value sub-blocks, each with one scale.
/// Decoding trick: flipping the upper bit of every qh pair (one XOR per 64 values) flips bit 5 of each q; one
/// vpternlogd then merges the low nibble with the two high bits (the bits above them are garbage); shifting left by
/// 26 drops the garbage and makes bit 5 the sign, so the int32 is exactly (q ^ 32 as signed 6 bits) * 2^26 =
/// (q - 32) * 2^26. The 2^-26 is folded into the 16 sub-block scales, computed once per super-block into a scratch
/// array (memory broadcasts are cheaper than scalar converts in the inner loop).
/// </summary>
internal readonly unsafe struct Q6KKernel : IRowKernel, IInt8Weights
{
    const float TwoPowMinus26 = 1.4901161193847656E-08f;

    public static int PrepFloats(int cols) => Q8K.PrepFloats(cols);

    public static void Prepare(float* x, int cols, float* prep) => Q8K.Quantize(x, cols, (byte*)prep, q4kOrder: false);

    /// <summary>(lo4 &amp; 0xF) | (high &amp; ~0xF), moved to the top 6 bits and converted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Merge(Vector512<int> lo4, Vector512<int> high) =>
        Vector512.ConvertToSingle(Avx512F.TernaryLogic(lo4, high, Vector512.Create(0xF), 0xE4) << 26);

    /// <summary>The four groups of 16 values (q - 32) * 2^26 at offsets l, l + 32, l + 64, l + 96 of half-block (ql, qh).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static (Vector512<float>, Vector512<float>, Vector512<float>, Vector512<float>) Q64(byte* ql, byte* qh)
    {
        var a = Avx512F.ConvertToVector512Int32(Vector128.Load(ql));
        var b = Avx512F.ConvertToVector512Int32(Vector128.Load(ql + 32));
        var h = Avx512F.ConvertToVector512Int32(Vector128.Load(qh)) ^ Vector512.Create(0xAA);
        return (Merge(a, h << 4), Merge(b, h << 2),
                Merge(Vector512.ShiftRightLogical(a, 4), h), Merge(Vector512.ShiftRightLogical(b, 4), Vector512.ShiftRightLogical(h, 2)));
    }

    /// <summary>sf[j] = d * scales[j] * 2^-26 for the 16 sub-blocks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Scales(byte* p, float* sf)
    {
        float d = Fp16.ToFloatFast(*(ushort*)(p + 208));
        var sc = Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)(p + 192))));
        (sc * Vector512.Create(d * TwoPowMinus26)).Store(sf);
    }

    static Vector512<short> Index(int first) =>
        Vector512.Create(Vector256.Create(Vector128.Create((short)first), Vector128.Create((short)(first + 1))),
                         Vector256.Create(Vector128.Create((short)(first + 2)), Vector128.Create((short)(first + 3))));

    /// <summary>Vectors of one call, built once (the JIT does not fold these into constants).</summary>
    struct Consts
    {
        public Vector512<ushort> ShiftLo, ShiftHi;
        public Vector512<byte> PickLo, PickHi;
        public Vector512<short> I0, I1, I2, I3;

        public static Consts Create() => new()
        {
            // Values l (bits 0-1 of qh) and l + 32 (bits 2-3) go to bits 4-5; then l + 64 (4-5) and l + 96 (6-7).
            ShiftLo = Vector512.Create(Vector256.Create((ushort)4), Vector256.Create((ushort)2)),
            ShiftHi = Vector512.Create(Vector256.Create((ushort)0), Vector256.Create((ushort)2)),
            PickLo = Vector512.Create(Vector256.Create(PickBits(0)), Vector256.Create(PickBits(2))).AsByte(),
            PickHi = Vector512.Create(Vector256.Create(PickBits(4)), Vector256.Create(PickBits(6))).AsByte(),
            I0 = Index(0), I1 = Index(4), I2 = Index(8), I3 = Index(12),
        };
    }

    /// <summary>vgf2p8affineqb matrix (one qword) that moves bits a and a + 1 of each byte to bits 4 and 5, clearing the rest.</summary>
    static ulong PickBits(int a) => (1ul << a << 24) | (1ul << (a + 1) << 16);

    /// <summary>sum over 64 values of q * x times the scales of their four 16-value groups, as 16 int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<int> Half(byte* p, byte* xq, Vector512<short> sc, in Consts c, bool high, Vector512<short> index, Vector512<byte> ql, Vector512<ushort> qh)
    {
        var nibble = Vector512.Create((byte)0x0F);
        // The two high bits of each value at bits 4-5: one GF(2) affine transform per 64 values where available.
        var t = Gfni.V512.IsSupported
            ? Gfni.V512.GaloisFieldAffineTransform(qh.AsByte(), high ? c.PickHi : c.PickLo, 0)
            : (high ? Avx512BW.ShiftRightLogicalVariable(qh, c.ShiftHi) : Avx512BW.ShiftLeftLogicalVariable(qh, c.ShiftLo)).AsByte() & Vector512.Create((byte)0x30);
        var q = Avx512F.TernaryLogic(high ? Avx512BW.ShiftRightLogical(ql.AsUInt16(), 4).AsByte() : ql, t, nibble, 0xE4);
        var prod = Avx512BW.MultiplyAddAdjacent(q, Vector512.Load((sbyte*)xq));
        return Avx512BW.MultiplyAddAdjacent(prod, Avx512BW.PermuteVar32x16(sc, index));
    }

    /// <summary>
    /// One super-block against Q8_K activations: q (0..63) is rebuilt as bytes (low nibble from ql, two bits from qh
    /// moved to bits 4-5 by one GF(2) affine transform or per-half shifts), vpmaddubsw pairs it with x, vpmaddwd
    /// applies the 16 int8 scales; the -32 offset is subtracted once as 32 * sum(scale * sum(x)) from the per-16 sums
    /// of x. d: the row's d * dx (converted for four rows at once by <see cref="Dot4"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Block(byte* p, byte* xq, Vector256<short> xsums, float* d, in Consts c, Vector512<float> acc)
    {
        var sc16 = Avx2.ConvertToVector256Int16(Vector128.Load((sbyte*)(p + 192)));
        var sc = sc16.ToVector512Unsafe();
        var corr = Avx2.MultiplyAddAdjacent(sc16, xsums);
        // qh of both halves in one load, each half repeated in both 256-bit halves by one vshufi64x2 (Vector512.Create
        // of two Vector256 costs two inserts, and Avx512F.BroadcastVector256ToVector512(ulong*) broadcasts the pointer
        // itself in .NET 10.0.12).
        var qh = Vector512.Load((ulong*)(p + 128));
        var qh0 = Avx512F.Shuffle4x128(qh, qh, 0b01_00_01_00).AsUInt16();
        var qh1 = Avx512F.Shuffle4x128(qh, qh, 0b11_10_11_10).AsUInt16();
        var ql0 = Vector512.Load(p);
        var ql1 = Vector512.Load(p + 64);
        var s = (Half(p, xq, sc, c, false, c.I0, ql0, qh0) + Half(p, xq + 64, sc, c, true, c.I1, ql0, qh0))
              + (Half(p, xq + 128, sc, c, false, c.I2, ql1, qh1) + Half(p, xq + 192, sc, c, true, c.I3, ql1, qh1));
        s -= (corr << 5).ToVector512();
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(s), Vector512.Create(*d), acc);
    }

    public static void Dot4(byte* r0, byte* r1, byte* r2, byte* r3, float* x, float* prep, int cols, float* y)
    {
        var c = Consts.Create();
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        float* ds = stackalloc float[8];
        int nb = cols / Q6KFormat.BlockSize;
        byte* xq = (byte*)prep;
        for (int b = 0; b < nb; b++, xq += Q8K.BlockBytes)
        {
            nint o = b * Q6KFormat.BlockBytes;
            var xsums = Vector256.Load((short*)(xq + Q8K.SumsOffset));
            // d of the four rows converted at once, times dx.
            var dd = Vector128.Create((int)*(ushort*)(r0 + o + 208), (int)*(ushort*)(r1 + o + 208), (int)*(ushort*)(r2 + o + 208), (int)*(ushort*)(r3 + o + 208));
            (Fp16.ToFloatFast8(Vector256.Create(dd, default)) * Vector256.Create(*(float*)(xq + Q8K.ScaleOffset))).Store(ds);
            a0 = Block(r0 + o, xq, xsums, ds, c, a0);
            a1 = Block(r1 + o, xq, xsums, ds + 1, c, a1);
            a2 = Block(r2 + o, xq, xsums, ds + 2, c, a2);
            a3 = Block(r3 + o, xq, xsums, ds + 3, c, a3);
        }
        y[0] = Vector512.Sum(a0); y[1] = Vector512.Sum(a1); y[2] = Vector512.Sum(a2); y[3] = Vector512.Sum(a3);
    }

    public static int BlockBytes => Q6KFormat.BlockBytes;
    public static int ScaleCount => 16;
    public static bool SignedWeights => true;
    public static bool Mins => false;

    /// <summary>Integer prefill (<see cref="Int8Gemm"/>): q - 32 as signed bytes in natural order, the 16 int8 scales.</summary>
    public static void Unpack(byte* block, sbyte* q, short* scales, short* mins, out float d, out float dmin)
    {
        var lo = Vector256.Create((byte)0xF);
        var two = Vector256.Create((byte)3);
        var offset = Vector256.Create((byte)32);
        for (int h = 0; h < 2; h++)
        {
            byte* ql = block + 64 * h, y = (byte*)q + 128 * h;
            var a = Vector256.Load(ql);
            var b = Vector256.Load(ql + 32);
            var qh = Vector256.Load(block + 128 + 32 * h);
            (((a & lo) | ((qh & two) << 4)) - offset).Store(y);
            (((b & lo) | ((Vector256.ShiftRightLogical(qh, 2) & two) << 4)) - offset).Store(y + 32);
            ((Vector256.ShiftRightLogical(a, 4) | ((Vector256.ShiftRightLogical(qh, 4) & two) << 4)) - offset).Store(y + 64);
            ((Vector256.ShiftRightLogical(b, 4) | (Vector256.ShiftRightLogical(qh, 6) << 4)) - offset).Store(y + 96);
        }
        Avx2.ConvertToVector256Int16(Vector128.Load((sbyte*)(block + 192))).Store(scales);
        d = Fp16.ToFloatFast(*(ushort*)(block + 208));
        dmin = 0;
    }

    public static void DequantRow(byte* src, float* dst, int cols)
    {
        float* sf = stackalloc float[16];
        for (int b = 0; b < cols / 256; b++, src += Q6KFormat.BlockBytes, dst += 256)
        {
            Scales(src, sf);
            for (int h = 0; h < 2; h++)
            {
                for (int g = 0; g < 32; g += 16)
                {
                    var (q1, q2, q3, q4) = Q64(src + 64 * h + g, src + 128 + 32 * h + g);
                    float* y = dst + 128 * h + g;
                    float* s = sf + 8 * h + g / 16;
                    (q1 * Vector512.Create(s[0])).Store(y);
                    (q2 * Vector512.Create(s[2])).Store(y + 32);
                    (q3 * Vector512.Create(s[4])).Store(y + 64);
                    (q4 * Vector512.Create(s[6])).Store(y + 96);
                }
            }
        }
    }
}
