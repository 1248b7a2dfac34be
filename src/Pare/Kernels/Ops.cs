using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Pare.Tensors;

namespace Pare.Kernels;

/// <summary>Element-wise and normalization kernels of the transformer (AVX-512 with scalar tails and fallbacks).</summary>
public static class Ops
{
    /// <summary>y = x / sqrt(mean(x^2) + eps) * weight.</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y) => RmsNorm(x, weight, eps, y, x.Length);

    /// <summary>RMS norm whose mean of squares divides by <paramref name="width"/> instead of x.Length: SliceGPT's sliced
    /// residual (x has d' entries) is normalized as if it still had the original width D (its RMSN module).</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y, int width)
    {
        if (weight.Length < x.Length || y.Length < x.Length) throw new ArgumentException("weight and y must be as long as x");
        if (width < 1) throw new ArgumentOutOfRangeException(nameof(width));
        float scale = (float)(1.0 / Math.Sqrt(SumOfSquares(x) / width + eps));
        ref float px = ref MemoryMarshal.GetReference(x), pw = ref MemoryMarshal.GetReference(weight), py = ref MemoryMarshal.GetReference(y);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(scale);
            for (; i + 16 <= x.Length; i += 16)
                (Vector512.LoadUnsafe(ref px, (nuint)i) * s * Vector512.LoadUnsafe(ref pw, (nuint)i)).StoreUnsafe(ref py, (nuint)i);
        }
        for (; i < x.Length; i++) y[i] = x[i] * scale * weight[i];
    }

    /// <summary>The largest value (-inf for an empty span).</summary>
    public static float Max(ReadOnlySpan<float> x)
    {
        ref float p = ref MemoryMarshal.GetReference(x);
        int n = x.Length, i = 0;
        float max = float.NegativeInfinity;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var m = Vector512.Create(float.NegativeInfinity);
            for (; i + 16 <= n; i += 16) m = Vector512.Max(m, Vector512.LoadUnsafe(ref p, (nuint)i));
            var h = Vector256.Max(m.GetLower(), m.GetUpper());
            var q = Vector128.Max(h.GetLower(), h.GetUpper());
            max = MathF.Max(MathF.Max(q[0], q[1]), MathF.Max(q[2], q[3]));
        }
        for (; i < n; i++) max = MathF.Max(max, x[i]);
        return max;
    }

    /// <summary>In-place softmax, subtracting the maximum first; -inf entries (masked) become 0.</summary>
    public static void Softmax(Span<float> x)
    {
        if (x.Length == 0) return;
        Scale(x, 1f / ExpMinusMax(x));
    }

    /// <summary>
    /// x = exp(x - max x) in place; returns the sum. Softmax without the division, for callers that scale what they
    /// compute from x instead (attention scales its 16-lane outputs, not every score).
    /// </summary>
    internal static float ExpMinusMax(Span<float> x)
    {
        ref float p = ref MemoryMarshal.GetReference(x);
        int n = x.Length, i = 0;
        float max = Max(x);
        double sum = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var vmax = Vector512.Create(max);
            var acc = Vector512<float>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                var e = Exp(Vector512.LoadUnsafe(ref p, (nuint)i) - vmax);
                e.StoreUnsafe(ref p, (nuint)i);
                acc += e;
            }
            sum = Vector512.Sum(acc);
        }
        for (; i < n; i++) { x[i] = MathF.Exp(x[i] - max); sum += x[i]; }
        return (float)sum;
    }

    /// <summary>gate = silu(gate) * up = gate / (1 + exp(-gate)) * up.</summary>
    public static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up)
    {
        if (up.Length < gate.Length) throw new ArgumentException("up must be as long as gate", nameof(up));
        ref float pg = ref MemoryMarshal.GetReference(gate);
        ref float pu = ref MemoryMarshal.GetReference(up);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var one = Vector512<float>.One;
            for (; i + 16 <= gate.Length; i += 16)
            {
                var g = Vector512.LoadUnsafe(ref pg, (nuint)i);
                (g / (one + Exp(-g)) * Vector512.LoadUnsafe(ref pu, (nuint)i)).StoreUnsafe(ref pg, (nuint)i);
            }
        }
        for (; i < gate.Length; i++)
        {
            float g = gate[i];
            gate[i] = g / (1f + MathF.Exp(-g)) * up[i];
        }
    }

    /// <summary>
    /// Rotates each of <paramref name="heads"/> heads of width headDim (first ropeDim dims) at position pos.
    /// The angles are computed once per call (in double, as the reference does) and shared by all heads.
    /// </summary>
    public static void Rope(Span<float> v, int heads, int headDim, int ropeDim, int pos, float theta, RopeLayout layout)
    {
        int half = ropeDim / 2;
        Span<float> cos = half <= 256 ? stackalloc float[half] : new float[half];
        Span<float> sin = half <= 256 ? stackalloc float[half] : new float[half];
        RopeAngles(pos, ropeDim, theta, cos, sin);
        Rope(v, heads, headDim, cos, sin, layout);
    }

    /// <summary>cos and sin of position pos's rotation angles (ropeDim / 2 each), in double as the reference computes them.</summary>
    public static void RopeAngles(int pos, int ropeDim, float theta, Span<float> cos, Span<float> sin)
    {
        for (int i = 0; i < ropeDim / 2; i++)
        {
            double angle = pos * Math.Pow(theta, -2.0 * i / ropeDim);
            cos[i] = (float)Math.Cos(angle);
            sin[i] = (float)Math.Sin(angle);
        }
    }

    /// <summary>Rotates each head by angles from <see cref="RopeAngles"/> (computed once per position, shared by layers).</summary>
    public static void Rope(Span<float> v, int heads, int headDim, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, RopeLayout layout)
    {
        int half = cos.Length;
        if (layout == RopeLayout.Interleaved && Vector512.IsHardwareAccelerated && half % 8 == 0 && half <= 128)
        {
            // Pairs (x0, x1) are adjacent: with cos and sin spread to pairs once (c c, -s s), a head is
            // x * c + swap(x) * s, 8 pairs per vector.
            Span<float> cc = stackalloc float[2 * half], ss = stackalloc float[2 * half];
            for (int i = 0; i < half; i++) { cc[2 * i] = cc[2 * i + 1] = cos[i]; ss[2 * i] = -sin[i]; ss[2 * i + 1] = sin[i]; }
            for (int h = 0; h < heads; h++)
            {
                var head = v.Slice(h * headDim, 2 * half);
                for (int i = 0; i < 2 * half; i += 16)
                {
                    var x = Vector512.Create((ReadOnlySpan<float>)head.Slice(i, 16));
                    var swapped = Avx512F.Permute4x32(x, 0xB1); // (x1, x0) in each pair
                    Vector512.FusedMultiplyAdd(swapped, Vector512.Create((ReadOnlySpan<float>)ss.Slice(i, 16)),
                        x * Vector512.Create((ReadOnlySpan<float>)cc.Slice(i, 16))).CopyTo(head.Slice(i, 16));
                }
            }
            return;
        }
        for (int h = 0; h < heads; h++)
        {
            var head = v.Slice(h * headDim, headDim);
            if (layout == RopeLayout.Interleaved)
            {
                for (int i = 0; i < half; i++)
                {
                    float x0 = head[2 * i], x1 = head[2 * i + 1];
                    head[2 * i] = x0 * cos[i] - x1 * sin[i];
                    head[2 * i + 1] = x0 * sin[i] + x1 * cos[i];
                }
            }
            else
            {
                var a = head[..half];
                var b = head.Slice(half, half);
                int i = 0;
                if (Vector512.IsHardwareAccelerated)
                {
                    for (; i + 16 <= half; i += 16)
                    {
                        var x0 = Vector512.Create((ReadOnlySpan<float>)a.Slice(i, 16));
                        var x1 = Vector512.Create((ReadOnlySpan<float>)b.Slice(i, 16));
                        var c = Vector512.Create((ReadOnlySpan<float>)cos.Slice(i, 16));
                        var s = Vector512.Create((ReadOnlySpan<float>)sin.Slice(i, 16));
                        (x0 * c - x1 * s).CopyTo(a.Slice(i, 16));
                        (x0 * s + x1 * c).CopyTo(b.Slice(i, 16));
                    }
                }
                for (; i < half; i++)
                {
                    float x0 = a[i], x1 = b[i];
                    a[i] = x0 * cos[i] - x1 * sin[i];
                    b[i] = x0 * sin[i] + x1 * cos[i];
                }
            }
        }
    }

    /// <summary>sum a[i] * b[i] with four independent vector accumulators.</summary>
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (b.Length < a.Length) throw new ArgumentException("b must be as long as a", nameof(b));
        ref float pa = ref MemoryMarshal.GetReference(a), pb = ref MemoryMarshal.GetReference(b);
        int n = a.Length, i = 0;
        float s = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; i + 64 <= n; i += 64)
            {
                s0 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref pa, (nuint)i), Vector512.LoadUnsafe(ref pb, (nuint)i), s0);
                s1 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref pa, (nuint)i + 16), Vector512.LoadUnsafe(ref pb, (nuint)i + 16), s1);
                s2 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref pa, (nuint)i + 32), Vector512.LoadUnsafe(ref pb, (nuint)i + 32), s2);
                s3 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref pa, (nuint)i + 48), Vector512.LoadUnsafe(ref pb, (nuint)i + 48), s3);
            }
            for (; i + 16 <= n; i += 16)
                s0 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref pa, (nuint)i), Vector512.LoadUnsafe(ref pb, (nuint)i), s0);
            s = Vector512.Sum((s0 + s1) + (s2 + s3));
        }
        for (; i < n; i++) s += a[i] * b[i];
        return s;
    }

    /// <summary>y += a * x.</summary>
    public static void Axpy(float a, ReadOnlySpan<float> x, Span<float> y)
    {
        if (y.Length < x.Length) throw new ArgumentException("y must be as long as x", nameof(y));
        ref float px = ref MemoryMarshal.GetReference(x), py = ref MemoryMarshal.GetReference(y);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(a);
            for (; i + 16 <= x.Length; i += 16)
                Vector512.FusedMultiplyAdd(va, Vector512.LoadUnsafe(ref px, (nuint)i), Vector512.LoadUnsafe(ref py, (nuint)i)).StoreUnsafe(ref py, (nuint)i);
        }
        for (; i < x.Length; i++) y[i] += a * x[i];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static double SumOfSquares(ReadOnlySpan<float> x)
    {
        ref float p = ref MemoryMarshal.GetReference(x);
        int i = 0;
        double ss = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<float> s0 = default, s1 = default;
            for (; i + 32 <= x.Length; i += 32)
            {
                var a = Vector512.LoadUnsafe(ref p, (nuint)i);
                var b = Vector512.LoadUnsafe(ref p, (nuint)i + 16);
                s0 = Vector512.FusedMultiplyAdd(a, a, s0);
                s1 = Vector512.FusedMultiplyAdd(b, b, s1);
            }
            ss = Vector512.Sum(s0 + s1);
        }
        for (; i < x.Length; i++) ss += (double)x[i] * x[i];
        return ss;
    }

    /// <summary>
    /// e^x for 16 floats, within 2 ulp of <see cref="MathF.Exp"/>; e^x = 2^n e^r with n = round(x log2 e) and |r| &lt;= ln2/2,
    /// e^r by its Taylor polynomial to degree 7 (error below 2e-8), 2^n applied by vscalefps. Inputs below -120 (and
    /// -inf, a masked score) give exactly 0. .NET's Vector512.Exp computes in double precision: 5x slower, and the
    /// softmax of attention was half of a token tree's attention time with it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Exp(Vector512<float> x)
    {
        x = Vector512.Min(Vector512.Max(x, Vector512.Create(-120f)), Vector512.Create(88.72f));
        var n = Avx512F.RoundScale(x * Vector512.Create(1.44269504f), 0x08); // round to nearest, no exceptions
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693145752f), x);   // ln 2, high bits
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-1.42860677e-6f), r);        // ln 2, the rest
        var p = Vector512.Create(1f / 5040);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 720));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 120));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 24));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 6));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(0.5f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        return Avx512F.Scale(p, n);
    }

    internal static void Scale(Span<float> x, float s)
    {
        ref float p = ref MemoryMarshal.GetReference(x);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var vs = Vector512.Create(s);
            for (; i + 16 <= x.Length; i += 16) (Vector512.LoadUnsafe(ref p, (nuint)i) * vs).StoreUnsafe(ref p, (nuint)i);
        }
        for (; i < x.Length; i++) x[i] *= s;
    }
}

/// <summary>Scalar references, written for clarity (double accumulation).</summary>
public static class OpsReference
{
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y)
    {
        double ss = 0;
        for (int i = 0; i < x.Length; i++) ss += (double)x[i] * x[i];
        float scale = (float)(1.0 / Math.Sqrt(ss / x.Length + eps));
        for (int i = 0; i < x.Length; i++) y[i] = x[i] * scale * weight[i];
    }

    public static void Softmax(Span<float> x)
    {
        float max = float.NegativeInfinity;
        foreach (var v in x) max = Math.Max(max, v);
        double sum = 0;
        for (int i = 0; i < x.Length; i++) { x[i] = MathF.Exp(x[i] - max); sum += x[i]; }
        for (int i = 0; i < x.Length; i++) x[i] = (float)(x[i] / sum);
    }

    public static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            float g = gate[i];
            gate[i] = g / (1f + MathF.Exp(-g)) * up[i];
        }
    }

    public static void Rope(Span<float> v, int heads, int headDim, int ropeDim, int pos, float theta, RopeLayout layout)
    {
        for (int h = 0; h < heads; h++)
        {
            var head = v.Slice(h * headDim, headDim);
            for (int i = 0; i < ropeDim / 2; i++)
            {
                double freq = Math.Pow(theta, -2.0 * i / ropeDim);
                double angle = pos * freq;
                float cos = (float)Math.Cos(angle), sin = (float)Math.Sin(angle);
                int a = layout == RopeLayout.Interleaved ? 2 * i : i;
                int b = layout == RopeLayout.Interleaved ? 2 * i + 1 : i + ropeDim / 2;
                float x0 = head[a], x1 = head[b];
                head[a] = x0 * cos - x1 * sin;
                head[b] = x0 * sin + x1 * cos;
            }
        }
    }

    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += (double)a[i] * b[i];
        return (float)s;
    }

    public static void Axpy(float a, ReadOnlySpan<float> x, Span<float> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] += a * x[i];
    }
}
