namespace Pare.Speculative;

/// <summary>
/// The latest earlier occurrence of the last <see cref="N"/> tokens of a growing sequence, kept incrementally: each
/// call indexes only the tokens appended since the last one (O(1) per token, a hash table of n-gram -> end of its
/// latest occurrence), so finding the match is O(1) instead of a scan of the whole history. Answers what the
/// backward scan of prompt lookup answers: the largest end e in [n, count - 1] with seq[e - n .. e) equal to the last n
/// tokens, or -1. A sequence that is not the one indexed (another list, or shorter than what was indexed, or with a
/// different token where the index ends) is indexed afresh.
/// </summary>
public sealed class NgramIndex
{
    // Open addressing over parallel arrays: n-gram key (tokens packed 21 bits each for n <= 3, else a hash), end + 1 (0 = empty).
    ulong[] _keys;
    int[] _ends;
    int _used;
    object? _seq;
    int _next, _lastToken = -1;

    /// <summary>An index of <paramref name="n"/>-grams with room for about <paramref name="capacity"/> of them before the table grows.</summary>
    public NgramIndex(int n, int capacity = 128)
    {
        if (n < 1) throw new ArgumentOutOfRangeException(nameof(n), n, "n-grams of at least one token");
        N = n;
        // At most half full: 2 x capacity slots, a power of two, at least 256 and at most 2^24 (the table grows past that).
        int slots = (int)Math.Min(1L << 24, Math.Max(256L, (long)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, capacity)) * 2));
        _keys = new ulong[slots];
        _ends = new int[slots];
    }

    /// <summary>The n-gram length.</summary>
    public int N { get; }

    /// <summary>Forgets everything indexed.</summary>
    public void Reset()
    {
        Array.Clear(_keys); Array.Clear(_ends);
        _used = 0; _seq = null; _next = 0; _lastToken = -1;
    }

    /// <summary>The end (exclusive) of the latest earlier occurrence of the last N tokens of <paramref name="seq"/>, or -1; indexes what was appended since the last call.</summary>
    /// <remarks>
    /// A <see cref="List{T}"/> (the generator's history) or an array is read in place as a span: no interface call per
    /// token read, so `auto`'s plain steps do not make the runtime tier up List&lt;int&gt;'s indexer and Count in the
    /// background while decoding (three compilations seen in session 8's JIT listing). Other lists are copied first.
    /// Compiled fully optimised at its first call (it has no loop of its own, so it would otherwise start at tier 0 and be
    /// recompiled twice in the background while decoding, List's AsSpan with it).
    /// </remarks>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public int Latest(IReadOnlyList<int> seq) => seq switch
    {
        List<int> list => Latest(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(list), list),
        int[] array => Latest(array, array),
        _ => Latest([.. seq], seq),
    };

    int Latest(ReadOnlySpan<int> seq, object identity)
    {
        int count = seq.Length;
        if (!ReferenceEquals(identity, _seq) || count < _next || (_next > 0 && seq[_next - 1] != _lastToken)) { Reset(); _seq = identity; }
        // Every n-gram ending before the last position is indexed; the suffix itself (end = count) is the query.
        for (; _next < count; _next++)
            if (_next >= N) Put(Key(seq, _next), _next);
        if (count > 0) _lastToken = seq[count - 1];
        if (count <= N) return -1;
        int e = Get(Key(seq, count));
        // Keys of longer n-grams are hashes: confirm the match (a collision means no match).
        if (e >= 0 && N > 3)
            for (int k = 1; k <= N; k++)
                if (seq[e - k] != seq[count - k]) return -1;
        return e;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    ulong Key(ReadOnlySpan<int> seq, int end)
    {
        ulong key = 0;
        if (N <= 3)
        {
            for (int k = end - N; k < end; k++) key = key << 21 | ((uint)seq[k] & 0x1FFFFFu);
            // Ids of 2^21 and more share keys with smaller ones: rare, and then only a wasted draft (verification is exact).
            return key;
        }
        key = 14695981039346656037UL;
        for (int k = end - N; k < end; k++) key = (key ^ (uint)seq[k]) * 1099511628211UL;
        return key;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    int Slot(ulong key)
    {
        int mask = _keys.Length - 1;
        int i = (int)((key * 0x9E3779B97F4A7C15UL) >> 40) & mask;
        while (_ends[i] != 0 && _keys[i] != key) i = (i + 1) & mask;
        return i;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    int Get(ulong key)
    {
        int i = Slot(key);
        return _ends[i] - 1;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    void Put(ulong key, int end)
    {
        int i = Slot(key);
        if (_ends[i] == 0)
        {
            if (2 * (_used + 1) > _keys.Length) { Grow(); i = Slot(key); }
            _used++;
            _keys[i] = key;
        }
        _ends[i] = end + 1;
    }

    void Grow()
    {
        var (keys, ends) = (_keys, _ends);
        _keys = new ulong[keys.Length * 2]; _ends = new int[keys.Length * 2];
        for (int j = 0; j < keys.Length; j++)
            if (ends[j] != 0) { int i = Slot(keys[j]); _keys[i] = keys[j]; _ends[i] = ends[j]; }
    }
}
