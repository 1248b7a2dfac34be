using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
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
    /// signed bytes). The 128 x sum(scale x weight) this adds is removed through <c>bias</c>.
    /// </summary>
    static abstract bool SignedWeights { get; }

    /// <summary>Whether the format has per-scale mins (value = d * sc * q - dmin * m), applied through sums of x per 32.</summary>
    static abstract bool Mins { get; }

    /// <summary>
    /// Unpacks one super-block: q[256] in natural order (0..15 unsigned, or signed), scales[ScaleCount], mins[8] (when
    /// <see cref="Mins"/>), d and dmin, and bias = 128 * sum(scale * q) for signed weights. The super-block's dot
    /// with Q8_K activations xq (scale dx) is then dx * (d * (sum_j scales[j] * dot(q_j, xq_j)) - dmin * sum_j mins[j] * sum(xq_j)).
    /// </summary>
    static abstract void Unpack(byte* block, sbyte* q, short* scales, short* mins, out float d, out float dmin, out int bias);
}

/// <summary>
/// Prefill matrix-matrix products of K-quant weights with x rounded to Q8_K per token (as llama.cpp does), in integers.
/// </summary>
/// <remarks>
/// Per chunk of <see cref="GroupRows"/> rows and <see cref="KBlocks"/> super-blocks, the rows are repacked once into a
/// per-thread buffer: one byte per weight, interleaved so that one 64-byte vector holds 8 consecutive weights of each
/// of the 8 rows, plus per-row scales spread to match. A tile then multiplies that with <see cref="Tokens"/> tokens:
/// for each 8-weight column chunk, x's 8 bytes are broadcast, vpmaddubsw gives 4 int16 per row, the (up to four) chunks
/// of one scale are added as int16, vpmaddwd applies the scales (2 int32 per row), and one float FMA per super-block
/// applies d * dx. Every weight vector serves all the tile's tokens, every x broadcast all 8 rows.
/// </remarks>
internal static unsafe class Int8Gemm
{
    public const int GroupRows = 8, Tokens = 4, KBlocks = 4;

    /// <summary>Fewer tokens than this go through the F32-activation GEMM (repacking would not pay off).</summary>
    public const int MinTokens = 4;

    /// <summary>Whether this weight type has an integer prefill kernel on this machine.</summary>
    public static bool Supports(GgmlType type) => MatMul.Avx512 && type is GgmlType.Q4_K or GgmlType.Q6_K;

    // Packed super-block of 8 rows: weights (32 vectors of 8 rows x 8 bytes), scales (up to 16 vectors, words 4r..4r+3 =
    // row r's scale), mins (2 vectors, words 4r..4r+3 = row r's mins 0-3 / 4-7), bias (int32 lane 2r), d, dmin (lanes 2r, 2r + 1).
    const int WOffset = 0, ScOffset = 2048, MinOffset = ScOffset + 16 * 64, BiasOffset = MinOffset + 128,
        DOffset = BiasOffset + 64, DminOffset = DOffset + 64, PackedBytes = DminOffset + 64;

    // Activations: Q8_K blocks (q[256], int16 sums, float d at 288; Q8K layout) for token t, super-block b at
    // ((b * nPad) + t) * Q8K.BlockBytes, so a tile's tokens are Q8K.BlockBytes apart. For Q4_K the first 8 sums are
    // the sums per 32; for signed weights q is stored as q + 128.

    /// <summary>Y[t, r] = sum_c W[r, c] * X[t, c] with X rounded to Q8_K per token; n &gt;= 1.</summary>
    public static void MatMulRows(WeightMatrix w, float* x, int n, float* y, int threads)
    {
        switch (w.Type)
        {
            case GgmlType.Q4_K: MatMulRows<Q4KKernel>(w, x, n, y, threads); break;
            case GgmlType.Q6_K: MatMulRows<Q6KKernel>(w, x, n, y, threads); break;
            default: throw new NotSupportedException($"integer matrix products with {w.Type} weights");
        }
    }

    struct Job
    {
        public byte* W;
        public long RowBytes;
        public byte* X;
        public float* Y;
        public int Rows, Blocks, N, NPad;
    }

    static void MatMulRows<TF>(WeightMatrix w, float* x, int n, float* y, int threads) where TF : IInt8Weights
    {
        int cols = w.Cols, nb = cols / Q8K.BlockSize, nPad = (n + Tokens - 1) / Tokens * Tokens;
        long bytes = (long)nb * nPad * Q8K.BlockBytes;
        byte* xq = (byte*)ThreadBuffers.Prep(checked((int)(bytes / 4)));
        Quantize<TF>(x, n, cols, nPad, xq, threads);
        var job = new Job { W = (byte*)w.Data, RowBytes = w.RowBytes, X = xq, Y = y, Rows = w.Rows, Blocks = nb, N = n, NPad = nPad };
        int chunks = (w.Rows + GroupRows - 1) / GroupRows;
        KernelThreadPool.Shared.Run(&Chunk<TF>, &job, chunks, threads);
    }

    struct QuantizeJob
    {
        public float* X;
        public byte* Xq;
        public int N, Cols, NPad;
    }

    /// <summary>Rounds every token to Q8_K in the tile layout (padding tokens are zero), one token per chunk.</summary>
    static void Quantize<TF>(float* x, int n, int cols, int nPad, byte* xq, int threads) where TF : IInt8Weights
    {
        var job = new QuantizeJob { X = x, Xq = xq, N = n, Cols = cols, NPad = nPad };
        KernelThreadPool.Shared.Run(&QuantizeToken<TF>, &job, nPad, threads);
    }

    static void QuantizeToken<TF>(void* ctx, int t) where TF : IInt8Weights
    {
        ref readonly QuantizeJob j = ref *(QuantizeJob*)ctx;
        int nb = j.Cols / Q8K.BlockSize, stride = j.NPad * Q8K.BlockBytes;
        byte* dst = j.Xq + t * Q8K.BlockBytes;
        if (t < j.N) Q8K.Quantize(j.X + (long)t * j.Cols, j.Cols, dst, q4kOrder: false, stride);
        for (int b = 0; b < nb; b++)
        {
            byte* blk = dst + (long)b * stride;
            if (t >= j.N) new Span<byte>(blk, Q8K.BlockBytes).Clear();
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

    static void Chunk<TF>(void* ctx, int chunk) where TF : IInt8Weights
    {
        ref readonly Job j = ref *(Job*)ctx;
        int r0 = chunk * GroupRows, nr = Math.Min(GroupRows, j.Rows - r0);
        byte* packed = (byte*)ThreadBuffers.Rows(KBlocks * PackedBytes / 4 + GroupRows * 256 / 4);
        byte* scratch = packed + KBlocks * PackedBytes;
        float* part = ThreadBuffers.Partial(j.NPad * 16);
        new Span<float>(part, j.NPad * 16).Clear();
        long xStride = (long)j.NPad * Q8K.BlockBytes;
        for (int b0 = 0; b0 < j.Blocks; b0 += KBlocks)
        {
            int kb = Math.Min(KBlocks, j.Blocks - b0);
            for (int b = 0; b < kb; b++)
                Pack<TF>(j.W + r0 * j.RowBytes + (long)(b0 + b) * TF.BlockBytes, j.RowBytes, nr, packed + b * PackedBytes, (sbyte*)scratch);
            for (int t = 0; t < j.NPad; t += Tokens)
                Tile<TF>(packed, kb, j.X + b0 * xStride + t * Q8K.BlockBytes, xStride, part + t * 16);
        }
        for (int t = 0; t < j.N; t++)
            for (int r = 0; r < nr; r++)
                j.Y[(long)t * j.Rows + r0 + r] = part[t * 16 + 2 * r] + part[t * 16 + 2 * r + 1];
    }

    /// <summary>Repacks super-block b of rows r0..r0+7 (src: the first row's block; a short group repeats its last row).</summary>
    static void Pack<TF>(byte* src, long rowBytes, int nr, byte* dst, sbyte* q) where TF : IInt8Weights
    {
        short* sc = stackalloc short[16];
        short* mn = stackalloc short[8];
        ulong* w = (ulong*)(dst + WOffset);
        int* bias = (int*)(dst + BiasOffset);
        float* d = (float*)(dst + DOffset), dmin = (float*)(dst + DminOffset);
        for (int r = 0; r < GroupRows; r++)
        {
            TF.Unpack(src + Math.Min(r, nr - 1) * rowBytes, q, sc, mn, out float dr, out float dminr, out int br);
            // Weight chunk u (8 values) of row r goes to vector u, bytes 8r..8r+7.
            ulong* qr = (ulong*)q;
            for (int u = 0; u < 32; u++) w[u * GroupRows + r] = qr[u];
            for (int s = 0; s < TF.ScaleCount; s++)
                ((ulong*)(dst + ScOffset + 64 * s))[r] = (ushort)sc[s] * 0x0001_0001_0001_0001UL;
            if (TF.Mins)
            {
                ((ulong*)(dst + MinOffset))[r] = ((ulong*)mn)[0];
                ((ulong*)(dst + MinOffset + 64))[r] = ((ulong*)mn)[1];
            }
            bias[2 * r] = br; bias[2 * r + 1] = 0;
            d[2 * r] = d[2 * r + 1] = dr;
            dmin[2 * r] = dmin[2 * r + 1] = dminr;
        }
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
    static Vector512<float> Finish<TF>(byte* pk, byte* x, Vector512<int> iacc, Vector512<float> acc) where TF : IInt8Weights
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
    /// for the group's 8 rows and <see cref="Tokens"/> tokens (x: the first token's first block; tokens Q8K.BlockBytes
    /// apart, super-blocks <paramref name="xStride"/> apart).
    /// </summary>
    static void Tile<TF>(byte* pk, int blocks, byte* x, long xStride, float* part) where TF : IInt8Weights
    {
        const int X = Q8K.BlockBytes;
        int wStep = 2048 / TF.ScaleCount, xStep = 256 / TF.ScaleCount;
        Vector512<float> f0 = default, f1 = default, f2 = default, f3 = default;
        for (int b = 0; b < blocks; b++, pk += PackedBytes, x += xStride)
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
            f0 = Finish<TF>(pk, x, i0, f0);
            f1 = Finish<TF>(pk, x + X, i1, f1);
            f2 = Finish<TF>(pk, x + 2 * X, i2, f2);
            f3 = Finish<TF>(pk, x + 3 * X, i3, f3);
        }
        (Vector512.Load(part) + f0).Store(part);
        (Vector512.Load(part + 16) + f1).Store(part + 16);
        (Vector512.Load(part + 32) + f2).Store(part + 32);
        (Vector512.Load(part + 48) + f3).Store(part + 48);
    }
}
