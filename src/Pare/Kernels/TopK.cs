using System.Buffers;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Pare.Kernels;

/// <summary>
/// The k-th largest of many scores (TokenSelect's top-k of ~16k votes per layer and token): a bisection on the floats'
/// order-preserving integer keys, each step one vectorized count of the keys at or above the midpoint; at most 32 steps
/// over data in the core's cache, no data-dependent branches (a quickselect mispredicts on every new array).
/// <see cref="KthLargestReference"/> (a sort) is the definition it is tested against.
/// </summary>
public static class TopK
{
    /// <summary>The k-th largest value of <paramref name="x"/> (1 ≤ k ≤ length; no NaN).</summary>
    public static float KthLargest(ReadOnlySpan<float> x, int k)
    {
        if (k < 1 || k > x.Length) throw new ArgumentOutOfRangeException(nameof(k), $"k = {k} outside 1..{x.Length}");
        // Rented: called per layer and decoded token (TokenSelect), it would allocate ~64 KB each time.
        var rented = ArrayPool<int>.Shared.Rent(x.Length);
        try
        {
            var keys = rented.AsSpan(0, x.Length);
            int min = int.MaxValue, max = int.MinValue;
            for (int i = 0; i < x.Length; i++)
            {
                int key = Key(x[i]);
                keys[i] = key;
                min = Math.Min(min, key);
                max = Math.Max(max, key);
            }
            // The largest t with count(key ≥ t) ≥ k is the k-th largest key: count(≥ lo) ≥ k, count(≥ hi) < k throughout.
            long lo = min, hi = (long)max + 1;
            while (hi - lo > 1)
            {
                long mid = lo + (hi - lo) / 2;
                if (CountAtLeast(keys, (int)mid) >= k) lo = mid;
                else hi = mid;
            }
            return Value((int)lo);
        }
        finally { ArrayPool<int>.Shared.Return(rented); }
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
