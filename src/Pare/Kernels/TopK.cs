using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Pare.Kernels;

/// <summary>
/// The k-th largest of many scores (TokenSelect's top-k of ~16k votes per layer and token): a bisection on the floats'
/// order-preserving integer keys, each step one vectorized count of the keys at or above the midpoint; at most 32 steps
/// over data in the core's cache, no data-dependent branches (a quickselect mispredicts on every new array); then
/// <see cref="Indices"/> collects the k indices by masks. <see cref="KthLargestReference"/> and
/// <see cref="IndicesReference"/> (sorts) are the definitions they are tested against.
/// </summary>
public static class TopK
{
    /// <summary>The k-th largest value of <paramref name="x"/> (1 ≤ k ≤ length; no NaN).</summary>
    public static float KthLargest(ReadOnlySpan<float> x, int k) => KthLargest(x, k, out _);

    /// <summary><see cref="KthLargest(ReadOnlySpan{float}, int)"/>, and how many values are larger than it.</summary>
    static float KthLargest(ReadOnlySpan<float> x, int k, out int above)
    {
        if (k < 1 || k > x.Length) throw new ArgumentOutOfRangeException(nameof(k), $"k = {k} outside 1..{x.Length}");
        // Rented: called per layer and decoded token (TokenSelect), it would allocate ~64 KB each time.
        var rented = ArrayPool<int>.Shared.Rent(x.Length);
        try
        {
            var keys = rented.AsSpan(0, x.Length);
            var (min, max) = Keys(x, keys);
            // The largest t with count(key ≥ t) ≥ k is the k-th largest key: count(≥ lo) ≥ k, count(≥ hi) < k throughout.
            // Once the keys in [lo, hi) are under an eighth of those counted, they are moved to the front and the steps
            // count only them (plus the cntHi keys at or above hi, known): most steps then read a few KB, not 64.
            long lo = min, hi = (long)max + 1;
            int cntLo = x.Length, cntHi = 0, baseCount = 0;
            while (hi - lo > 1)
            {
                if ((long)(cntLo - cntHi) * 8 < keys.Length && keys.Length > 256)
                {
                    keys = keys[..Compact(keys, (int)lo, hi)];
                    baseCount = cntHi;
                }
                long mid = lo + (hi - lo) / 2;
                int count = baseCount + CountAtLeast(keys, (int)mid);
                if (count >= k) (lo, cntLo) = (mid, count);
                else (hi, cntHi) = (mid, count);
            }
            above = cntHi;
            return Value((int)lo);
        }
        finally { ArrayPool<int>.Shared.Return(rented); }
    }

    /// <summary>Moves the keys in [lo, hi) to the front of <paramref name="keys"/>, in order, and returns how many there
    /// are (each written at or before where it was read, so in place).</summary>
    static int Compact(Span<int> keys, int lo, long hi)
    {
        int m = 0, i = 0;
        ref int p = ref MemoryMarshal.GetReference(keys);
        if (Vector512.IsHardwareAccelerated && hi <= int.MaxValue)
        {
            Vector512<int> vlo = Vector512.Create(lo), vhi = Vector512.Create((int)hi);
            for (; i + 16 <= keys.Length; i += 16)
            {
                var v = Vector512.LoadUnsafe(ref p, (nuint)i);
                for (ulong bits = (Vector512.GreaterThanOrEqual(v, vlo) & Vector512.LessThan(v, vhi)).ExtractMostSignificantBits(); bits != 0; bits &= bits - 1)
                    keys[m++] = keys[i + BitOperations.TrailingZeroCount(bits)];
            }
        }
        for (; i < keys.Length; i++)
            if (keys[i] >= lo && keys[i] < hi) keys[m++] = keys[i];
        return m;
    }

    /// <summary>
    /// Indices of the k largest values of <paramref name="x"/> (ties at the k-th: lower index first), ascending, into
    /// top[0..k). After <see cref="KthLargest(ReadOnlySpan{float}, int)"/> (which also counts the values above it), one vectorized pass: per 16 values, the masks of those above the k-th and
    /// equal to it, the set bits' indices written in order (no branch per value: TokenSelect keeps ~2k of ~16k, so a
    /// per-value branch mispredicts often). <see cref="IndicesReference"/> is its definition.
    /// </summary>
    public static void Indices(ReadOnlySpan<float> x, int k, Span<int> top)
    {
        if (top.Length < k) throw new ArgumentException($"room for {top.Length} indices, k = {k}", nameof(top));
        float kth = KthLargest(x, k, out int above);
        ref float p = ref MemoryMarshal.GetReference(x);
        int ties = k - above, i = 0, n = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var vk = Vector512.Create(kth);
            for (; i + 16 <= x.Length; i += 16)
            {
                var v = Vector512.LoadUnsafe(ref p, (nuint)i);
                ulong keep = Vector512.GreaterThan(v, vk).ExtractMostSignificantBits();
                for (ulong eq = Vector512.Equals(v, vk).ExtractMostSignificantBits(); eq != 0 && ties > 0; eq &= eq - 1, ties--) keep |= eq & (~eq + 1);
                for (; keep != 0; keep &= keep - 1) top[n++] = i + BitOperations.TrailingZeroCount(keep);
            }
        }
        for (; i < x.Length && n < k; i++)
            if (x[i] > kth || (x[i] == kth && ties-- > 0)) top[n++] = i;
    }

    /// <summary>The scalar reference of <see cref="Indices"/>: a stable sort of the indices by value, descending; the first k, ascending.</summary>
    public static int[] IndicesReference(ReadOnlySpan<float> x, int k)
    {
        var a = x.ToArray();
        return [.. Enumerable.Range(0, a.Length).OrderByDescending(i => a[i]).ThenBy(i => i).Take(k).Order()];
    }

    /// <summary>The scalar reference of <see cref="KthLargest"/>: sort descending, take the k-th.</summary>
    public static float KthLargestReference(ReadOnlySpan<float> x, int k)
    {
        var a = x.ToArray();
        Array.Sort(a, (p, q) => q.CompareTo(p));
        return a[k - 1];
    }

    /// <summary>An int that orders like the float (negative floats: magnitude bits flipped).</summary>
    static int Key(float f)
    {
        int bits = BitConverter.SingleToInt32Bits(f);
        return bits ^ ((bits >> 31) & int.MaxValue);
    }

    /// <summary>keys[i] = Key(x[i]); returns their minimum and maximum.</summary>
    static (int Min, int Max) Keys(ReadOnlySpan<float> x, Span<int> keys)
    {
        int min = int.MaxValue, max = int.MinValue, i = 0;
        if (Vector512.IsHardwareAccelerated && x.Length >= 16)
        {
            ref int px = ref Unsafe.As<float, int>(ref MemoryMarshal.GetReference(x));
            ref int pk = ref MemoryMarshal.GetReference(keys);
            Vector512<int> vmin = Vector512.Create(int.MaxValue), vmax = Vector512.Create(int.MinValue);
            for (; i + 16 <= x.Length; i += 16)
            {
                var bits = Vector512.LoadUnsafe(ref px, (nuint)i);
                var key = bits ^ (Vector512.ShiftRightArithmetic(bits, 31) & Vector512.Create(int.MaxValue));
                key.StoreUnsafe(ref pk, (nuint)i);
                vmin = Vector512.Min(vmin, key);
                vmax = Vector512.Max(vmax, key);
            }
            for (int l = 0; l < 16; l++) { min = Math.Min(min, vmin[l]); max = Math.Max(max, vmax[l]); }
        }
        for (; i < x.Length; i++)
        {
            int key = Key(x[i]);
            keys[i] = key;
            min = Math.Min(min, key);
            max = Math.Max(max, key);
        }
        return (min, max);
    }

    static float Value(int key) => BitConverter.Int32BitsToSingle(key ^ ((key >> 31) & int.MaxValue));

    static int CountAtLeast(ReadOnlySpan<int> keys, int t)
    {
        int count = 0, i = 0;
        ref int p = ref MemoryMarshal.GetReference(keys);
        if (Vector512.IsHardwareAccelerated)
        {
            var vt = Vector512.Create(t);
            for (; i + 16 <= keys.Length; i += 16)
                count += BitOperations.PopCount(Vector512.GreaterThanOrEqual(Vector512.LoadUnsafe(ref p, (nuint)i), vt).ExtractMostSignificantBits());
        }
        for (; i < keys.Length; i++) count += keys[i] >= t ? 1 : 0;
        return count;
    }
}
