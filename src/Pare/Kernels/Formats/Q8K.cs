using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pare.Kernels.Formats;

/// <summary>
/// Q8_K activations, as llama.cpp quantizes x before a K-quant matrix-vector product: per 256 values
/// d = max / -127 where max is the value of largest magnitude, q = min(127, round-half-even(x * -127 / max)), and
/// sums of q per 16 values. Weight-times-activation dot products then run on integers (exact) and only the
/// activation rounding (relative error about 2^-8 per value) separates them from the F32 result.
/// </summary>
/// <remarks>
/// The kernels' layout per 256 values (<see cref="BlockBytes"/> bytes): q[256] (natural order, or for Q4_K the 32-value
/// groups in the order 0, 2, 1, 3, 4, 6, 5, 7 so one 64-byte weight load pairs with one 64-byte x load), then
/// int16 sums at <see cref="SumsOffset"/> (16 sums per 16 values, or for Q4_K 8 sums per 32 values), then the
/// float d at <see cref="ScaleOffset"/>.
/// </remarks>
internal static unsafe class Q8K
{
    public const int BlockSize = 256, BlockBytes = 320, SumsOffset = 256, ScaleOffset = 288;

    /// <summary>Floats of prep buffer for a row of <paramref name="cols"/> values.</summary>
    public static int PrepFloats(int cols) => cols / BlockSize * (BlockBytes / 4);

    /// <summary>ggml's quantize_row_q8_K_ref for one block of 256: writes q and returns d.</summary>
    public static float QuantizeBlockReference(ReadOnlySpan<float> x, Span<sbyte> q)
    {
        float max = 0, amax = 0;
        for (int j = 0; j < BlockSize; j++)
        {
            float ax = MathF.Abs(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
        if (amax == 0) { q[..BlockSize].Clear(); return 0; }
        float iscale = -127f / max;
        for (int j = 0; j < BlockSize; j++)
            q[j] = (sbyte)Math.Min(127, (int)MathF.Round(iscale * x[j], MidpointRounding.ToEven));
        return 1 / iscale;
    }

    /// <summary>Quantizes cols values of x into the kernel layout at dst (see the remarks); blocks are <paramref name="stride"/> bytes apart.</summary>
    public static void Quantize(float* x, int cols, byte* dst, bool q4kOrder, int stride = BlockBytes)
    {
        for (int b = 0; b < cols / BlockSize; b++, x += BlockSize, dst += stride)
        {
            var vmax = Vector512<float>.Zero;
            for (int i = 0; i < BlockSize; i += 16) vmax = Vector512.Max(vmax, Vector512.Abs(Vector512.Load(x + i)));
            float amax = MaxOf(vmax);
            short* sums = (short*)(dst + SumsOffset);
            if (amax == 0)
            {
                new Span<byte>(dst, BlockBytes).Clear();
                continue;
            }
            // The first value of largest magnitude, with its sign (ggml keeps the first on ties).
            int at = 0;
            while (at < BlockSize - 1 && MathF.Abs(x[at]) != amax) at++;
            float iscale = -127f / x[at];
            var vis = Vector512.Create(iscale);
            var top = Vector512.Create(127);
            for (int g = 0; g < 16; g++)
            {
                // cvtps2dq rounds half to even under the default MXCSR, as ggml's nearest_int.
                var v = Vector512.Min(Avx512F.ConvertToVector512Int32(Vector512.Load(x + 16 * g) * vis), top);
                int slot = q4kOrder ? Q4KSlot(g) : g;
                Avx512F.ConvertToVector128SByte(v).Store((sbyte*)dst + 16 * slot);
                int s = Vector512.Sum(v);
                if (q4kOrder) { if ((g & 1) == 0) sums[g >> 1] = (short)s; else sums[g >> 1] += (short)s; }
                else sums[g] = (short)s;
            }
            *(float*)(dst + ScaleOffset) = 1 / iscale;
        }
    }

    /// <summary>Where 16-value group g goes in the Q4_K order (32-value groups 0, 2, 1, 3, 4, 6, 5, 7).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int Q4KSlot(int g)
    {
        int group = g >> 1, half = g & 1;
        // 32-value group j goes to slot perm[j] with perm = 0, 2, 1, 3, 4, 6, 5, 7 (its own inverse).
        int slotGroup = (group & 3) switch { 1 => group + 1, 2 => group - 1, _ => group };
        return 2 * slotGroup + half;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float MaxOf(Vector512<float> v)
    {
        var m = Vector256.Max(v.GetLower(), v.GetUpper());
        var n = Vector128.Max(m.GetLower(), m.GetUpper());
        n = Vector128.Max(n, Vector128.Shuffle(n, Vector128.Create(2, 3, 0, 1)));
        n = Vector128.Max(n, Vector128.Shuffle(n, Vector128.Create(1, 0, 3, 2)));
        return n.ToScalar();
    }
}
