using System.Runtime.Intrinsics;

namespace Pare.Generation;

/// <summary>
/// The m largest logits and their token ids, sorted (largest first, lower id first on ties), in O(vocab + m log m)
/// without sorting the vocabulary: a bounded min-heap whose root is the weakest kept entry, fed by a vectorized scan
/// that skips every block of 16 logits with none above the root. NaN counts as -infinity. Reuses its arrays.
/// </summary>
internal sealed class TopSelector
{
    /// <summary>After <see cref="Select"/>: the kept logits, largest first.</summary>
    public float[] Keys { get; private set; } = [];
    /// <summary>After <see cref="Select"/>: their token ids, in the same order.</summary>
    public int[] Ids { get; private set; } = [];

    public void Select(ReadOnlySpan<float> x, int m)
    {
        int n = x.Length;
        if (m < 1 || m > n) throw new ArgumentOutOfRangeException(nameof(m));
        if (Keys.Length < m) { Keys = new float[Math.Max(m, 64)]; Ids = new int[Math.Max(m, 64)]; }
        var keys = Keys.AsSpan(0, m);
        var ids = Ids.AsSpan(0, m);

        // Fill the heap with the first m, then replace the root by anything strictly larger. Later ids lose ties,
        // so "strictly larger than the root" is exactly "better than the weakest kept".
        for (int i = 0; i < m; i++) { keys[i] = Key(x[i]); ids[i] = i; SiftUp(keys, ids, i); }
        float root = keys[0];
        int j = m;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; j + 16 <= n; j += 16)
            {
                if (!Vector512.GreaterThanAny(Vector512.Create(x.Slice(j, 16)), Vector512.Create(root))) continue;
                for (int t = j; t < j + 16; t++)
                    if (x[t] > root) { keys[0] = x[t]; ids[0] = t; SiftDown(keys, ids, m); root = keys[0]; }
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; j + 8 <= n; j += 8)
            {
                if (!Vector256.GreaterThanAny(Vector256.Create(x.Slice(j, 8)), Vector256.Create(root))) continue;
                for (int t = j; t < j + 8; t++)
                    if (x[t] > root) { keys[0] = x[t]; ids[0] = t; SiftDown(keys, ids, m); root = keys[0]; }
            }
        }
        for (; j < n; j++)
            if (x[j] > root) { keys[0] = x[j]; ids[0] = j; SiftDown(keys, ids, m); root = keys[0]; }

        // Heap sort in place: move the weakest to the end each time, leaving the strongest first.
        for (int size = m - 1; size > 0; size--)
        {
            (keys[0], keys[size]) = (keys[size], keys[0]);
            (ids[0], ids[size]) = (ids[size], ids[0]);
            SiftDown(keys, ids, size);
        }
    }

    /// <summary>The first index i with x[i] == value, or -1 (vectorized).</summary>
    public static int IndexOfFirst(ReadOnlySpan<float> x, float value)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var v = Vector512.Create(value);
            for (; i + 16 <= x.Length; i += 16)
            {
                ulong bits = Vector512.Equals(Vector512.Create(x.Slice(i, 16)), v).ExtractMostSignificantBits();
                if (bits != 0) return i + System.Numerics.BitOperations.TrailingZeroCount(bits);
            }
        }
        for (; i < x.Length; i++) if (x[i] == value) return i;
        return -1;
    }

    static float Key(float v) => float.IsNaN(v) ? float.NegativeInfinity : v;

    /// <summary>a is weaker than b: smaller, or equal with a larger id.</summary>
    static bool Weaker(float ka, int ia, float kb, int ib) => ka < kb || (ka == kb && ia > ib);

    static void SiftUp(Span<float> keys, Span<int> ids, int i)
    {
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (!Weaker(keys[i], ids[i], keys[parent], ids[parent])) break;
            (keys[i], keys[parent]) = (keys[parent], keys[i]);
            (ids[i], ids[parent]) = (ids[parent], ids[i]);
            i = parent;
        }
    }

    static void SiftDown(Span<float> keys, Span<int> ids, int size)
    {
        int i = 0;
        float k = keys[0];
        int id = ids[0];
        while (true)
        {
            int c = 2 * i + 1;
            if (c >= size) break;
            if (c + 1 < size && Weaker(keys[c + 1], ids[c + 1], keys[c], ids[c])) c++;
            if (!Weaker(keys[c], ids[c], k, id)) break;
            keys[i] = keys[c]; ids[i] = ids[c];
            i = c;
        }
        keys[i] = k; ids[i] = id;
    }
}
