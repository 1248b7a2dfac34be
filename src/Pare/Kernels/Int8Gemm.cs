using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Pare.Kernels.Formats;
using Pare.Tensors;

namespace Pare.Kernels;

/// <summary>
/// What a K-quant format provides to <see cref="Int8Gemm"/>: one super-block of a row unpacked to one byte per weight
/// with integer scales, so products with Q8_K activations run in integers (as llama.cpp's repacked Q4_K / Q6_K GEMMs).
/// </summary>
internal unsafe interface IInt8Weights
{
    /// <summary>Bytes per stored super-block of 256 weights.</summary>
    static abstract int BlockBytes { get; }

    /// <summary>Integer scales per super-block: 8 (one per 32 weights) or 16 (one per 16).</summary>
    static abstract int ScaleCount { get; }

    /// <summary>
    /// Whether the unpacked weights are signed and x is taken unsigned (x + 128; vpmaddubsw multiplies unsigned by
    /// signed bytes). The 128 x sum(scale x weight) this adds is computed when packing and subtracted.
    /// </summary>
    static abstract bool SignedWeights { get; }

    /// <summary>Whether the format has per-scale mins (value = d * sc * q - dmin * m), applied through sums of x per 32.</summary>
    static abstract bool Mins { get; }

    /// <summary>
    /// Unpacks one super-block: q[256] in natural order (0..15 unsigned, or signed), scales[ScaleCount], mins[8] (when
    /// <see cref="Mins"/>), d and dmin. The super-block's dot with Q8_K activations xq (scale dx) is then
    /// dx * (d * (sum_j scales[j] * dot(q_j, xq_j)) - dmin * sum_j mins[j] * sum(xq_j)).
    /// </summary>
    static abstract void Unpack(byte* block, sbyte* q, short* scales, short* mins, out float d, out float dmin);
}

/// <summary>
/// One integer prefill scheme for <see cref="Int8Gemm"/>: how a token's x is rounded to int8 blocks, how a block of
/// 8 rows is repacked, and the tile that multiplies a packed slice with <see cref="Int8Gemm.Tokens"/> tokens.
/// </summary>
internal unsafe interface IInt8Scheme
{
    /// <summary>Columns per block (the unit of x rounding and of packing).</summary>
    static abstract int BlockValues { get; }

    /// <summary>Bytes of one token's rounded block.</summary>
    static abstract int XBytes { get; }

    /// <summary>Bytes of one packed block of 8 rows.</summary>
    static abstract int PackedBytes { get; }

    /// <summary>Blocks per column slice (packed once per chunk, kept in L1 while every token passes).</summary>
    static abstract int KBlocks { get; }

    /// <summary>Float lanes per token of a tile's sums: 16 (row r in lanes 2r and 2r + 1) or 8 (row r in lane r).</summary>
    static abstract int Lanes { get; }

    /// <summary>Rounds one token (cols values; null: a padding token of zeros) into blocks <paramref name="stride"/> bytes apart.</summary>
    static abstract void QuantizeToken(float* x, int cols, byte* dst, long stride);

    /// <summary>Repacks one block of 8 rows (src: the first row's block; rows nr..7 repeat row nr - 1).</summary>
    static abstract void Pack(byte* src, long rowBytes, int nr, byte* dst);

    /// <summary>part[Lanes * t + ...] += the tile's sums over <paramref name="blocks"/> packed blocks (x: the first token's
    /// first block; tokens XBytes apart, blocks <paramref name="xStride"/> apart).</summary>
    static abstract void Tile(byte* pk, int blocks, byte* x, long xStride, float* part);
}

/// <summary>
/// Prefill matrix-matrix products with x rounded to int8 blocks per token (as llama.cpp does: Q8_K for K-quants, Q8_0
/// for Q8_0), multiplied in integers.
/// </summary>
/// <remarks>
/// Per chunk of <see cref="GroupRows"/> rows and a slice of columns, the rows are repacked once into a per-thread buffer:
/// one byte per weight, interleaved so that one vector holds a few consecutive weights of each of the 8 rows, plus
/// per-row scales spread to match. A tile then multiplies that with <see cref="Tokens"/> tokens: x's bytes for those
/// columns are broadcast and every weight vector serves all the tile's tokens, every x broadcast all 8 rows.
/// K-quants (<see cref="KQuant{TF}"/>): 8 weights per row per 64-byte vector, vpmaddubsw gives 4 int16 per row, the
/// chunks of one scale are added as int16, vpmaddwd applies the scales (2 int32 per row), one float FMA per
/// super-block applies d * dx. Q8_0 (<see cref="Q8_0Scheme"/>): 4 weights per row per 32-byte vector, AVX-VNNI
/// vpdpbusd (x + 128 unsigned times the signed weights) gives one int32 per row, one float FMA per block of 32; without
/// AVX-VNNI (Zen 4: .NET exposes no EVEX vpdpbusd) <see cref="Q8_0WideScheme"/> multiplies int16 in AVX-512 (vpmaddwd),
/// with the same integer sums and the same float steps, so both give identical results.
/// </remarks>
internal static unsafe class Int8Gemm
{
    public const int GroupRows = 8, Tokens = 4;

    /// <summary>
    /// From this many tokens on the integer GEMM runs (one token is decode). Even 2 or 3 tokens (small speculative trees)
    /// measured no slower than the F32-activation GEMM (T(3) / T(1) about 2 instead of 3.5 on Q4_K_M, under load): the
    /// repacking costs about what that GEMM's dequantization does, and the integer tile is cheaper per token.
    /// </summary>
    public const int MinTokens = 2;

    /// <summary>Whether this weight type has an integer prefill kernel on this machine.</summary>
    public static bool Supports(GgmlType type) =>
        MatMul.Avx512 && (type is GgmlType.Q4_K or GgmlType.Q6_K || (type is GgmlType.Q8_0 && Q8Act.Supported));

    /// <summary>Whether Q8_0 takes the AVX-VNNI scheme (<see cref="Q8_0Scheme"/>) or the int16 one (<see cref="Q8_0WideScheme"/>).</summary>
    internal static bool Q8Vnni => AvxVnni.IsSupported;

    /// <summary>Y[t, r] = sum_c W[r, c] * X[t, c] with X rounded per token as llama.cpp does; n &gt;= 1.</summary>
    public static void MatMulRows(WeightMatrix w, float* x, int n, float* y, int threads)
    {
        switch (w.Type)
        {
            case GgmlType.Q4_K: MatMulRows<KQuant<Q4KKernel>>(w, x, n, y, threads); break;
            case GgmlType.Q6_K: MatMulRows<KQuant<Q6KKernel>>(w, x, n, y, threads); break;
            case GgmlType.Q8_0 when Q8Vnni: MatMulRows<Q8_0Scheme>(w, x, n, y, threads); break;
            case GgmlType.Q8_0: MatMulRows<Q8_0WideScheme>(w, x, n, y, threads); break;
            default: throw new NotSupportedException($"integer matrix products with {w.Type} weights");
        }
    }

    /// <summary>
    /// As <see cref="MatMulRows(WeightMatrix, float*, int, float*, int)"/> for a compact sparse Q8_0 matrix: each chunk's
    /// rows are decoded back to dense Q8_0 blocks (the same quants and scales) in a per-thread buffer first, so the result
    /// equals the dense matrix's exactly.
    /// </summary>
    public static void MatMulRowsCompactQ8(Sparse.SparseMatrix m, float* x, int n, float* y, int threads)
    {
        if (m.ValueType != GgmlType.Q8_0) throw new ArgumentException("the compact integer GEMM takes Q8_0 values", nameof(m));
        if (Q8Vnni) MatMulRows<Q8_0Scheme>((byte*)m.Data, GgmlTypeInfo.RowBytes(GgmlType.Q8_0, m.Cols), m.Rows, m.Cols, compact: true, x, n, y, threads);
        else MatMulRows<Q8_0WideScheme>((byte*)m.Data, GgmlTypeInfo.RowBytes(GgmlType.Q8_0, m.Cols), m.Rows, m.Cols, compact: true, x, n, y, threads);
    }

    struct Job
    {
        public bool Compact; // W is a compact sparse blob (Sparse.SparseMatrix), decoded per chunk
        public byte* W;
        public long RowBytes;
        public byte* X;
        public float* Y;
        public float* Src;
        public int Rows, Cols, Blocks, N, NPad;
    }

    // Rounded activations: token t's block b at (b * nPad + t) * XBytes, so a tile's tokens are XBytes apart.
    static void MatMulRows<TS>(WeightMatrix w, float* x, int n, float* y, int threads) where TS : IInt8Scheme =>
        MatMulRows<TS>((byte*)w.Data, w.RowBytes, w.Rows, w.Cols, compact: false, x, n, y, threads);

    static void MatMulRows<TS>(byte* data, long rowBytes, int rows, int cols, bool compact, float* x, int n, float* y, int threads) where TS : IInt8Scheme
    {
        int nb = cols / TS.BlockValues, nPad = (n + Tokens - 1) / Tokens * Tokens;
        long bytes = (long)nb * nPad * TS.XBytes;
        byte* xq = (byte*)ThreadBuffers.Prep(checked((int)(bytes / 4 + 1)));
        var job = new Job { Compact = compact, W = data, RowBytes = rowBytes, X = xq, Y = y, Src = x, Rows = rows, Cols = cols, Blocks = nb, N = n, NPad = nPad };
        KernelThreadPool.Shared.Run(&QuantizeToken<TS>, &job, nPad, threads);
        KernelThreadPool.Shared.Run(&Chunk<TS>, &job, (rows + GroupRows - 1) / GroupRows, threads);
    }

    static void QuantizeToken<TS>(void* ctx, int t) where TS : IInt8Scheme
    {
        ref readonly Job j = ref *(Job*)ctx;
        TS.QuantizeToken(t < j.N ? j.Src + (long)t * j.Cols : null, j.Cols, j.X + t * TS.XBytes, (long)j.NPad * TS.XBytes);
    }

    static void Chunk<TS>(void* ctx, int chunk) where TS : IInt8Scheme
    {
        ref readonly Job j = ref *(Job*)ctx;
        int r0 = chunk * GroupRows, nr = Math.Min(GroupRows, j.Rows - r0), lanes = TS.Lanes;
        long blockBytes = j.RowBytes / j.Blocks;
        byte* packed = (byte*)ThreadBuffers.Rows(TS.KBlocks * TS.PackedBytes / 4);
        float* part = ThreadBuffers.Partial(j.NPad * lanes);
        new Span<float>(part, j.NPad * lanes).Clear();
        long xStride = (long)j.NPad * TS.XBytes;
        byte* w = j.W + r0 * j.RowBytes;
        if (j.Compact)
        {
            w = (byte*)ThreadBuffers.Decoded(checked((int)(nr * j.RowBytes / 4 + 1)));
            for (int r = 0; r < nr; r++) Sparse.SparseMatMul.DecodeQ8Blocks(j.W, r0 + r, j.Cols, w + r * j.RowBytes);
        }
        for (int b0 = 0; b0 < j.Blocks; b0 += TS.KBlocks)
        {
            int kb = Math.Min(TS.KBlocks, j.Blocks - b0);
            for (int b = 0; b < kb; b++)
                TS.Pack(w + (b0 + b) * blockBytes, j.RowBytes, nr, packed + b * TS.PackedBytes);
            for (int t = 0; t < j.NPad; t += Tokens)
                TS.Tile(packed, kb, j.X + b0 * xStride + t * TS.XBytes, xStride, part + t * lanes);
        }
        for (int t = 0; t < j.N; t++)
            for (int r = 0; r < nr; r++)
                j.Y[(long)t * j.Rows + r0 + r] = lanes == 16 ? part[t * 16 + 2 * r] + part[t * 16 + 2 * r + 1] : part[t * 8 + r];
    }
}

/// <summary>
/// K-quant weights (<see cref="IInt8Weights"/>) against Q8_K activations (q[256], int16 sums, float d at 288;
/// <see cref="Q8K"/>'s layout). For formats with mins the first 8 sums are the sums per 32; for signed weights q is
/// stored as q + 128.
/// </summary>
internal readonly unsafe struct KQuant<TF> : IInt8Scheme where TF : IInt8Weights
{
    // Packed super-block of 8 rows: weights (32 vectors of 8 rows x 8 bytes), scales (up to 16 vectors, words 4r..4r+3 =
    // row r's scale), mins (2 vectors, words 4r..4r+3 = row r's mins 0-3 / 4-7), bias (int32 lanes 2r, 2r + 1: the
    // integer sum with x = 0, signed weights only), d, dmin (lanes 2r, 2r + 1).
    const int WOffset = 0, ScOffset = 2048, MinOffset = ScOffset + 16 * 64, BiasOffset = MinOffset + 128,
        DOffset = BiasOffset + 64, DminOffset = DOffset + 64, Packed = DminOffset + 64;
    const int GroupRows = Int8Gemm.GroupRows;

    public static int BlockValues => Q8K.BlockSize;
    public static int XBytes => Q8K.BlockBytes;
    public static int PackedBytes => Packed;
    public static int KBlocks => 4;
    public static int Lanes => 16;

    public static void QuantizeToken(float* x, int cols, byte* dst, long stride)
    {
        int nb = cols / Q8K.BlockSize;
        if (x != null) Q8K.Quantize(x, cols, dst, q4kOrder: false, checked((int)stride));
        for (int b = 0; b < nb; b++)
        {
            byte* blk = dst + b * stride;
            if (x == null) new Span<byte>(blk, Q8K.BlockBytes).Clear();
            if (TF.Mins)
            {
                // Sums per 32 from the sums per 16 (in place: sum j reads 2j and 2j + 1 >= j).
                short* s = (short*)(blk + Q8K.SumsOffset);
                for (int i = 0; i < 8; i++) s[i] = (short)(s[2 * i] + s[2 * i + 1]);
            }
            if (TF.SignedWeights)
                for (int i = 0; i < Q8K.BlockSize; i += 64)
                    (Vector512.Load(blk + i) ^ Vector512.Create((byte)0x80)).Store(blk + i);
        }
    }

    /// <summary>Unpacks each row (<see cref="IInt8Weights.Unpack"/>) and interleaves the 8 rows.</summary>
    public static void Pack(byte* src, long rowBytes, int nr, byte* dst)
    {
        sbyte* q = stackalloc sbyte[GroupRows * 256];
        short* sc = stackalloc short[GroupRows * 16];
        short* mn = stackalloc short[GroupRows * 8];
        float* d = (float*)(dst + DOffset), dmin = (float*)(dst + DminOffset);
        for (int r = 0; r < GroupRows; r++)
        {
            TF.Unpack(src + Math.Min(r, nr - 1) * rowBytes, q + 256 * r, sc + 16 * r, mn + 8 * r, out float dr, out float dminr);
            d[2 * r] = d[2 * r + 1] = dr;
            dmin[2 * r] = dmin[2 * r + 1] = dminr;
        }
        // Weight chunk u (8 values) of row r goes to vector u, bytes 8r..8r+7: four 8 x 8 transposes of 8-byte groups.
        for (int g = 0; g < 4; g++)
            Transpose8x8((long*)q + 8 * g, 32, (long*)(dst + WOffset) + 64 * g);
        // Scale s of row r goes to words 4r..4r+3 of vector s: rows 0-3 permuted from sc[0..64), rows 4-7 from sc[64..128).
        var z0 = Vector512.Load(sc); var z1 = Vector512.Load(sc + 32);
        var z2 = Vector512.Load(sc + 64); var z3 = Vector512.Load(sc + 96);
        var index = Vector512.Create((short)0, 0, 0, 0, 16, 16, 16, 16, 32, 32, 32, 32, 48, 48, 48, 48,
                                     0, 0, 0, 0, 16, 16, 16, 16, 32, 32, 32, 32, 48, 48, 48, 48);
        var upper = Vector512.Create(Vector256<short>.Zero, Vector256<short>.AllBitsSet);
        for (int s = 0; s < TF.ScaleCount; s++, index += Vector512<short>.One)
            Vector512.ConditionalSelect(upper, Avx512BW.PermuteVar32x16x2(z2, index, z3), Avx512BW.PermuteVar32x16x2(z0, index, z1))
                .Store((short*)(dst + ScOffset + 64 * s));
        if (TF.Mins)
        {
            // Mins 0-3 of row r to words 4r..4r+3 of the first vector, 4-7 to the second.
            var m0 = Vector512.Load((long*)mn); var m1 = Vector512.Load((long*)mn + 8);
            var even = Vector512.Create(0L, 2, 4, 6, 8, 10, 12, 14);
            Avx512F.PermuteVar8x64x2(m0, even, m1).Store((long*)(dst + MinOffset));
            Avx512F.PermuteVar8x64x2(m0, even + Vector512<long>.One, m1).Store((long*)(dst + MinOffset + 64));
        }
        if (TF.SignedWeights)
        {
            // bias = what x + 128 adds: the tile's integer sum with x = 0.
            var bias = Vector512<int>.Zero;
            var x0 = Vector512.Create((byte)128);
            for (int s = 0; s < TF.ScaleCount; s++)
            {
                sbyte* w = (sbyte*)(dst + WOffset) + 128 * s;
                var p = Avx512BW.MultiplyAddAdjacent(x0, Vector512.Load(w)) + Avx512BW.MultiplyAddAdjacent(x0, Vector512.Load(w + 64));
                bias += Avx512BW.MultiplyAddAdjacent(p, Vector512.Load((short*)(dst + ScOffset + 64 * s)));
            }
            bias.Store((int*)(dst + BiasOffset));
        }
    }

    /// <summary>dst[8i + r] = src[r * stride + i] for an 8 x 8 block of 8-byte groups.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Transpose8x8(long* src, int stride, long* dst)
    {
        var a0 = Vector512.Load(src); var a1 = Vector512.Load(src + stride);
        var a2 = Vector512.Load(src + 2 * stride); var a3 = Vector512.Load(src + 3 * stride);
        var a4 = Vector512.Load(src + 4 * stride); var a5 = Vector512.Load(src + 5 * stride);
        var a6 = Vector512.Load(src + 6 * stride); var a7 = Vector512.Load(src + 7 * stride);
        var t0 = Avx512F.UnpackLow(a0, a1); var t1 = Avx512F.UnpackHigh(a0, a1);
        var t2 = Avx512F.UnpackLow(a2, a3); var t3 = Avx512F.UnpackHigh(a2, a3);
        var t4 = Avx512F.UnpackLow(a4, a5); var t5 = Avx512F.UnpackHigh(a4, a5);
        var t6 = Avx512F.UnpackLow(a6, a7); var t7 = Avx512F.UnpackHigh(a6, a7);
        // 128-bit lanes: 0x88 takes lanes 0, 2 of each source, 0xDD lanes 1, 3.
        var u0 = Avx512F.Shuffle4x128(t0, t2, 0x88); var u1 = Avx512F.Shuffle4x128(t0, t2, 0xDD);
        var u2 = Avx512F.Shuffle4x128(t1, t3, 0x88); var u3 = Avx512F.Shuffle4x128(t1, t3, 0xDD);
        var u4 = Avx512F.Shuffle4x128(t4, t6, 0x88); var u5 = Avx512F.Shuffle4x128(t4, t6, 0xDD);
        var u6 = Avx512F.Shuffle4x128(t5, t7, 0x88); var u7 = Avx512F.Shuffle4x128(t5, t7, 0xDD);
        Avx512F.Shuffle4x128(u0, u4, 0x88).Store(dst);
        Avx512F.Shuffle4x128(u2, u6, 0x88).Store(dst + 8);
        Avx512F.Shuffle4x128(u1, u5, 0x88).Store(dst + 16);
        Avx512F.Shuffle4x128(u3, u7, 0x88).Store(dst + 24);
        Avx512F.Shuffle4x128(u0, u4, 0xDD).Store(dst + 32);
        Avx512F.Shuffle4x128(u2, u6, 0xDD).Store(dst + 40);
        Avx512F.Shuffle4x128(u1, u5, 0xDD).Store(dst + 48);
        Avx512F.Shuffle4x128(u3, u7, 0xDD).Store(dst + 56);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<sbyte> Broadcast8(byte* p) => Vector512.Create(*(long*)p).AsSByte();

    /// <summary>int16 products of one scale's four unsigned 8-row chunks (w0..w3) with signed token x, before scaling.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<short> Products(Vector512<byte> w0, Vector512<byte> w1, Vector512<byte> w2, Vector512<byte> w3, byte* x) =>
        (Avx512BW.MultiplyAddAdjacent(w0, Broadcast8(x)) + Avx512BW.MultiplyAddAdjacent(w1, Broadcast8(x + 8)))
        + (Avx512BW.MultiplyAddAdjacent(w2, Broadcast8(x + 16)) + Avx512BW.MultiplyAddAdjacent(w3, Broadcast8(x + 24)));

    /// <summary>int16 products of one scale's two signed 8-row chunks at w with unsigned token x (x + 128), before scaling.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<short> Products(byte* w, byte* x) =>
        Avx512BW.MultiplyAddAdjacent(Broadcast8(x).AsByte(), Vector512.Load((sbyte*)w))
        + Avx512BW.MultiplyAddAdjacent(Broadcast8(x + 8).AsByte(), Vector512.Load((sbyte*)w + 64));

    /// <summary>One token's float update for one super-block: acc + dx * (d * (iacc - bias) - dmin * mins . xsums).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Finish(byte* pk, byte* x, Vector512<int> iacc, Vector512<float> acc) 
    {
        var dx = Vector512.Create(*(float*)(x + Q8K.ScaleOffset));
        if (TF.SignedWeights) iacc -= Vector512.Load((int*)(pk + BiasOffset));
        acc = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(iacc), Vector512.Load((float*)(pk + DOffset)) * dx, acc);
        if (TF.Mins)
        {
            var m = Avx512BW.MultiplyAddAdjacent(Vector512.Load((short*)(pk + MinOffset)), Vector512.Create(*(long*)(x + Q8K.SumsOffset)).AsInt16())
                  + Avx512BW.MultiplyAddAdjacent(Vector512.Load((short*)(pk + MinOffset + 64)), Vector512.Create(*(long*)(x + Q8K.SumsOffset + 8)).AsInt16());
            acc = Avx512F.FusedMultiplyAddNegated(Vector512.ConvertToSingle(m), Vector512.Load((float*)(pk + DminOffset)) * dx, acc);
        }
        return acc;
    }

    /// <summary>
    /// part[16t + 2r] + part[16t + 2r + 1] += dot of row r with token t over <paramref name="blocks"/> packed super-blocks,
    /// for the group's 8 rows and <see cref="Int8Gemm.Tokens"/> tokens (x: the first token's first block; tokens Q8K.BlockBytes
    /// apart, super-blocks <paramref name="xStride"/> apart).
    /// </summary>
    public static void Tile(byte* pk, int blocks, byte* x, long xStride, float* part) 
    {
        const int X = Q8K.BlockBytes;
        int wStep = 2048 / TF.ScaleCount, xStep = 256 / TF.ScaleCount;
        Vector512<float> f0 = default, f1 = default, f2 = default, f3 = default;
        for (int b = 0; b < blocks; b++, pk += Packed, x += xStride)
        {
            Vector512<int> i0 = default, i1 = default, i2 = default, i3 = default;
            byte* w = pk + WOffset, xs = x;
            short* sc = (short*)(pk + ScOffset);
            for (int s = 0; s < TF.ScaleCount; s++, w += wStep, xs += xStep, sc += 32)
            {
                var scale = Vector512.Load(sc);
                if (TF.SignedWeights)
                {
                    // At most 2 x 2 x 255 x 32 = 32640 per int16: two chunks fit before scaling.
                    i0 += Avx512BW.MultiplyAddAdjacent(Products(w, xs), scale);
                    i1 += Avx512BW.MultiplyAddAdjacent(Products(w, xs + X), scale);
                    i2 += Avx512BW.MultiplyAddAdjacent(Products(w, xs + 2 * X), scale);
                    i3 += Avx512BW.MultiplyAddAdjacent(Products(w, xs + 3 * X), scale);
                }
                else
                {
                    // At most 4 x 2 x 15 x 127 = 15240 per int16: four chunks fit before scaling.
                    var w0 = Vector512.Load(w); var w1 = Vector512.Load(w + 64);
                    var w2 = Vector512.Load(w + 128); var w3 = Vector512.Load(w + 192);
                    i0 += Avx512BW.MultiplyAddAdjacent(Products(w0, w1, w2, w3, xs), scale);
                    i1 += Avx512BW.MultiplyAddAdjacent(Products(w0, w1, w2, w3, xs + X), scale);
                    i2 += Avx512BW.MultiplyAddAdjacent(Products(w0, w1, w2, w3, xs + 2 * X), scale);
                    i3 += Avx512BW.MultiplyAddAdjacent(Products(w0, w1, w2, w3, xs + 3 * X), scale);
                }
            }
            f0 = Finish(pk, x, i0, f0);
            f1 = Finish(pk, x + X, i1, f1);
            f2 = Finish(pk, x + 2 * X, i2, f2);
            f3 = Finish(pk, x + 3 * X, i3, f3);
        }
        (Vector512.Load(part) + f0).Store(part);
        (Vector512.Load(part + 16) + f1).Store(part + 16);
        (Vector512.Load(part + 32) + f2).Store(part + 32);
        (Vector512.Load(part + 48) + f3).Store(part + 48);
    }
}

/// <summary>
/// Q8_0 weights against Q8_0 activations (llama.cpp's x86 rounding, <see cref="Q8Act.QuantizeBlock"/>), stored per
/// (block, token) as q + 128 (32 unsigned bytes) and the f16-rounded dx as a float. Packed block of 8 rows: 8 vectors
/// of 8 rows x 4 signed weights, the 8 weight scales, and -128 * sum(q) per row (what x + 128 adds).
/// </summary>
internal readonly unsafe struct Q8_0Scheme : IInt8Scheme
{
    const int X = 40, DOffset = 256, BiasOffset = 288;

    public static int BlockValues => Q8Act.BlockSize;
    public static int XBytes => X;
    public static int PackedBytes => 320;
    public static int KBlocks => 32;
    public static int Lanes => 8;

    public static void QuantizeToken(float* x, int cols, byte* dst, long stride)
    {
        for (int b = 0; b < cols / Q8Act.BlockSize; b++, dst += stride)
        {
            float dx = 0;
            if (x != null) dx = Q8Act.QuantizeBlock(x + 32 * b, (sbyte*)dst, out _);
            else Vector256<byte>.Zero.Store(dst);
            (Vector256.Load(dst) ^ Vector256.Create((byte)0x80)).Store(dst);
            *(float*)(dst + 32) = dx;
        }
    }

    public static void Pack(byte* src, long rowBytes, int nr, byte* dst)
    {
        Transpose(src, rowBytes, nr, dst);
        var bias = Vector256<int>.Zero;
        for (int c = 0; c < 8; c++)
            bias = AvxVnni.MultiplyWideningAndAdd(bias, Vector256.Create((byte)128), Vector256.Load((sbyte*)dst + 32 * c));
        (-bias).Store((int*)(dst + BiasOffset));
        long last = (nr - 1) * rowBytes;
        float* d = (float*)(dst + DOffset);
        for (int r = 0; r < Int8Gemm.GroupRows; r++) d[r] = Fp16.ToFloatFast(*(ushort*)(src + Math.Min(r * rowBytes, last)));
    }

    /// <summary>
    /// The quants of one block of 8 rows as 8 vectors of 32 bytes at dst: vector c holds bytes 4c..4c+3 of each row
    /// (an 8 x 8 transpose of 4-byte groups; rows nr..7 repeat row nr - 1).
    /// </summary>
    internal static void Transpose(byte* src, long rowBytes, int nr, byte* dst)
    {
        long last = (nr - 1) * rowBytes;
        var r0 = Vector256.Load((float*)(src + 2));
        var r1 = Vector256.Load((float*)(src + Math.Min(rowBytes, last) + 2));
        var r2 = Vector256.Load((float*)(src + Math.Min(2 * rowBytes, last) + 2));
        var r3 = Vector256.Load((float*)(src + Math.Min(3 * rowBytes, last) + 2));
        var r4 = Vector256.Load((float*)(src + Math.Min(4 * rowBytes, last) + 2));
        var r5 = Vector256.Load((float*)(src + Math.Min(5 * rowBytes, last) + 2));
        var r6 = Vector256.Load((float*)(src + Math.Min(6 * rowBytes, last) + 2));
        var r7 = Vector256.Load((float*)(src + Math.Min(7 * rowBytes, last) + 2));
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        var s0 = Avx.Shuffle(t0, t2, 0x44); var s1 = Avx.Shuffle(t0, t2, 0xEE);
        var s2 = Avx.Shuffle(t1, t3, 0x44); var s3 = Avx.Shuffle(t1, t3, 0xEE);
        var s4 = Avx.Shuffle(t4, t6, 0x44); var s5 = Avx.Shuffle(t4, t6, 0xEE);
        var s6 = Avx.Shuffle(t5, t7, 0x44); var s7 = Avx.Shuffle(t5, t7, 0xEE);
        float* w = (float*)dst;
        Avx.Permute2x128(s0, s4, 0x20).Store(w); Avx.Permute2x128(s1, s5, 0x20).Store(w + 8);
        Avx.Permute2x128(s2, s6, 0x20).Store(w + 16); Avx.Permute2x128(s3, s7, 0x20).Store(w + 24);
        Avx.Permute2x128(s0, s4, 0x31).Store(w + 32); Avx.Permute2x128(s1, s5, 0x31).Store(w + 40);
        Avx.Permute2x128(s2, s6, 0x31).Store(w + 48); Avx.Permute2x128(s3, s7, 0x31).Store(w + 56);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<byte> Broadcast4(byte* p) => Vector256.Create(*(int*)p).AsByte();

    /// <summary>One token's block: acc + dw * dx * (sum of (x + 128) * w - 128 * sum(w)), 8 rows in 8 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Block(Vector256<sbyte> w0, Vector256<sbyte> w1, Vector256<sbyte> w2, Vector256<sbyte> w3,
        Vector256<sbyte> w4, Vector256<sbyte> w5, Vector256<sbyte> w6, Vector256<sbyte> w7,
        Vector256<int> bias, Vector256<float> d, byte* x, Vector256<float> acc)
    {
        var a = AvxVnni.MultiplyWideningAndAdd(bias, Broadcast4(x), w0);
        var b = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, Broadcast4(x + 4), w1);
        a = AvxVnni.MultiplyWideningAndAdd(a, Broadcast4(x + 8), w2);
        b = AvxVnni.MultiplyWideningAndAdd(b, Broadcast4(x + 12), w3);
        a = AvxVnni.MultiplyWideningAndAdd(a, Broadcast4(x + 16), w4);
        b = AvxVnni.MultiplyWideningAndAdd(b, Broadcast4(x + 20), w5);
        a = AvxVnni.MultiplyWideningAndAdd(a, Broadcast4(x + 24), w6);
        b = AvxVnni.MultiplyWideningAndAdd(b, Broadcast4(x + 28), w7);
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(a + b), d * Vector256.Create(*(float*)(x + 32)), acc);
    }

    public static void Tile(byte* pk, int blocks, byte* x, long xStride, float* part)
    {
        Vector256<float> f0 = default, f1 = default, f2 = default, f3 = default;
        for (int b = 0; b < blocks; b++, pk += 320, x += xStride)
        {
            sbyte* w = (sbyte*)pk;
            var w0 = Vector256.Load(w); var w1 = Vector256.Load(w + 32); var w2 = Vector256.Load(w + 64); var w3 = Vector256.Load(w + 96);
            var w4 = Vector256.Load(w + 128); var w5 = Vector256.Load(w + 160); var w6 = Vector256.Load(w + 192); var w7 = Vector256.Load(w + 224);
            var bias = Vector256.Load((int*)(pk + BiasOffset));
            var d = Vector256.Load((float*)(pk + DOffset));
            f0 = Block(w0, w1, w2, w3, w4, w5, w6, w7, bias, d, x, f0);
            f1 = Block(w0, w1, w2, w3, w4, w5, w6, w7, bias, d, x + X, f1);
            f2 = Block(w0, w1, w2, w3, w4, w5, w6, w7, bias, d, x + 2 * X, f2);
            f3 = Block(w0, w1, w2, w3, w4, w5, w6, w7, bias, d, x + 3 * X, f3);
        }
        (Vector256.Load(part) + f0).Store(part);
        (Vector256.Load(part + 8) + f1).Store(part + 8);
        (Vector256.Load(part + 16) + f2).Store(part + 16);
        (Vector256.Load(part + 24) + f3).Store(part + 24);
    }
}

/// <summary>
/// Q8_0 weights against Q8_0 activations without AVX-VNNI: the same rounding of x as <see cref="Q8_0Scheme"/>, multiplied
/// as int16 in AVX-512 (vpmaddwd: 32 products per instruction, two per int32 lane), which on Zen 4 runs about twice
/// as many multiply-adds per cycle as F32 FMAs. x per (block, token): 32 int16 and dx (float) at 64. Packed block of
/// 8 rows: 8 vectors of 8 rows x 4 int16 weights (lanes 2r, 2r + 1 = row r), then each row's scale in lanes 2r and 2r + 1.
/// Per block, the integer sum of each row is exact (as with vpdpbusd), and dw * dx * sum is applied with the same float
/// steps, so the results equal <see cref="Q8_0Scheme"/>'s bit for bit. Two tokens share a vector: their pair sums are
/// merged so that lane 2r holds token A's row r and lane 2r + 1 token B's.
/// </summary>
internal readonly unsafe struct Q8_0WideScheme : IInt8Scheme
{
    const int X = 72, DOffset = 512;

    public static int BlockValues => Q8Act.BlockSize;
    public static int XBytes => X;
    public static int PackedBytes => 576;
    public static int KBlocks => 16;
    public static int Lanes => 8;

    public static void QuantizeToken(float* x, int cols, byte* dst, long stride)
    {
        sbyte* q = stackalloc sbyte[32];
        for (int b = 0; b < cols / Q8Act.BlockSize; b++, dst += stride)
        {
            float dx = 0;
            if (x != null) dx = Q8Act.QuantizeBlock(x + 32 * b, q, out _);
            else Vector256<sbyte>.Zero.Store(q);
            Avx512BW.ConvertToVector512Int16(Vector256.Load(q)).Store((short*)dst);
            *(float*)(dst + 64) = dx;
        }
    }

    public static void Pack(byte* src, long rowBytes, int nr, byte* dst)
    {
        sbyte* t = stackalloc sbyte[256];
        Q8_0Scheme.Transpose(src, rowBytes, nr, (byte*)t);
        for (int c = 0; c < 8; c++) Avx512BW.ConvertToVector512Int16(Vector256.Load(t + 32 * c)).Store((short*)dst + 32 * c);
        long last = (nr - 1) * rowBytes;
        float* d = (float*)(dst + DOffset);
        for (int r = 0; r < Int8Gemm.GroupRows; r++) d[2 * r] = d[2 * r + 1] = Fp16.ToFloatFast(*(ushort*)(src + Math.Min(r * rowBytes, last)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<short> Broadcast4(byte* p) => Vector512.Create(*(long*)p).AsInt16();

    /// <summary>One token's block: lane 2r + p = the sum over the block of row r's products in k = 4c + 2p, 4c + 2p + 1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<int> Sums(Vector512<short> w0, Vector512<short> w1, Vector512<short> w2, Vector512<short> w3,
        Vector512<short> w4, Vector512<short> w5, Vector512<short> w6, Vector512<short> w7, byte* x)
    {
        var a = Avx512BW.MultiplyAddAdjacent(w0, Broadcast4(x)) + Avx512BW.MultiplyAddAdjacent(w1, Broadcast4(x + 8));
        var b = Avx512BW.MultiplyAddAdjacent(w2, Broadcast4(x + 16)) + Avx512BW.MultiplyAddAdjacent(w3, Broadcast4(x + 24));
        var c = Avx512BW.MultiplyAddAdjacent(w4, Broadcast4(x + 32)) + Avx512BW.MultiplyAddAdjacent(w5, Broadcast4(x + 40));
        var e = Avx512BW.MultiplyAddAdjacent(w6, Broadcast4(x + 48)) + Avx512BW.MultiplyAddAdjacent(w7, Broadcast4(x + 56));
        return (a + b) + (c + e);
    }

    static readonly Vector512<int> OddLanes = Vector512.Create(0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1);

    /// <summary>Tokens A and B's block: acc + dw * dx * sum, row r of A in lane 2r, of B in lane 2r + 1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> PairBlock(Vector512<short> w0, Vector512<short> w1, Vector512<short> w2, Vector512<short> w3,
        Vector512<short> w4, Vector512<short> w5, Vector512<short> w6, Vector512<short> w7,
        Vector512<float> d, byte* xa, byte* xb, Vector512<float> acc)
    {
        var a = Sums(w0, w1, w2, w3, w4, w5, w6, w7, xa);
        var b = Sums(w0, w1, w2, w3, w4, w5, w6, w7, xb);
        var odd = OddLanes;
        // lane 2r: a[2r] + a[2r + 1]; lane 2r + 1: b[2r + 1] + b[2r] (integers: exact, any order).
        var keep = Vector512.ConditionalSelect(odd, b, a);
        var swap = Avx512F.Shuffle(Vector512.ConditionalSelect(odd, a, b), 0xB1);
        var sum = keep + swap;
        var dx = Vector512.ConditionalSelect(odd.AsSingle(), Vector512.Create(*(float*)(xb + 64)), Vector512.Create(*(float*)(xa + 64)));
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(sum), d * dx, acc);
    }

    static readonly Vector512<int> Deinterleave = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);

    public static void Tile(byte* pk, int blocks, byte* x, long xStride, float* part)
    {
        Vector512<float> f01 = default, f23 = default;
        for (int b = 0; b < blocks; b++, pk += 576, x += xStride)
        {
            short* w = (short*)pk;
            var w0 = Vector512.Load(w); var w1 = Vector512.Load(w + 32); var w2 = Vector512.Load(w + 64); var w3 = Vector512.Load(w + 96);
            var w4 = Vector512.Load(w + 128); var w5 = Vector512.Load(w + 160); var w6 = Vector512.Load(w + 192); var w7 = Vector512.Load(w + 224);
            var d = Vector512.Load((float*)(pk + DOffset));
            f01 = PairBlock(w0, w1, w2, w3, w4, w5, w6, w7, d, x, x + X, f01);
            f23 = PairBlock(w0, w1, w2, w3, w4, w5, w6, w7, d, x + 2 * X, x + 3 * X, f23);
        }
        // [A0 B0 A1 B1 ...] -> [A0..A7 B0..B7]: tokens t and t + 1 at part[8t + r], part[8(t + 1) + r].
        (Vector512.Load(part) + Avx512F.PermuteVar16x32(f01, Deinterleave)).Store(part);
        (Vector512.Load(part + 16) + Avx512F.PermuteVar16x32(f23, Deinterleave)).Store(part + 16);
    }
}
