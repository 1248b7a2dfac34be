namespace Pare.Tokenizers;

/// <summary>
/// The greedy loop both trainers share: repeatedly merge the most frequent adjacent symbol pair over a
/// multiset of words. Pair counts are updated incrementally (only the words that contain the merged pair are
/// revisited), and the best pair comes from a heap with lazy deletion, so a merge costs time in proportion
/// to the words it touches, not to the corpus.
/// </summary>
internal static class PairMerger
{
    /// <summary>
    /// Learns up to <paramref name="maxMerges"/> merges. <paramref name="words"/> hold symbol ids (negative: a symbol
    /// that never merges) and are rewritten in place. <paramref name="newSymbol"/> gives the id of a merged pair, or -1
    /// to forbid that pair. Ties in count go to the smaller (left, right) ids, so training is deterministic.
    /// Pairs seen fewer than <paramref name="minCount"/> times are never merged.
    /// </summary>
    public static List<(int Left, int Right, int Result)> Learn(List<int[]> words, long[] freqs, int maxMerges, Func<int, int, int> newSymbol, int minCount = 2)
    {
        var counts = new Dictionary<long, long>();
        var where = new Dictionary<long, HashSet<int>>();
        for (int w = 0; w < words.Count; w++)
        {
            var s = words[w];
            for (int i = 0; i + 1 < s.Length; i++)
            {
                if (s[i] < 0 || s[i + 1] < 0) continue;
                long k = Key(s[i], s[i + 1]);
                counts[k] = counts.GetValueOrDefault(k) + freqs[w];
                if (!where.TryGetValue(k, out var set)) where[k] = set = [];
                set.Add(w);
            }
        }
        var heap = new PriorityQueue<long, (long NegCount, int Left, int Right)>();
        foreach (var (k, c) in counts) heap.Enqueue(k, (-c, (int)(k >> 32), (int)k));
        var banned = new HashSet<long>();
        var merges = new List<(int, int, int)>();
        var changed = new HashSet<long>();
        while (merges.Count < maxMerges && heap.TryDequeue(out long pair, out var pri))
        {
            long count = counts.GetValueOrDefault(pair);
            if (count != -pri.NegCount || count < minCount || banned.Contains(pair)) continue; // stale entry
            int a = pri.Left, b = pri.Right;
            int result = newSymbol(a, b);
            if (result < 0) { banned.Add(pair); continue; }
            merges.Add((a, b, result));
            changed.Clear();
            foreach (int w in where[pair].ToArray())
            {
                var s = words[w];
                long f = freqs[w];
                for (int i = 0; i + 1 < s.Length; i++)
                {
                    if (s[i] < 0 || s[i + 1] < 0) continue;
                    long k = Key(s[i], s[i + 1]);
                    counts[k] -= f;
                    where[k].Remove(w);
                    changed.Add(k);
                }
                var t = new List<int>(s.Length);
                for (int i = 0; i < s.Length; i++)
                {
                    if (i + 1 < s.Length && s[i] == a && s[i + 1] == b) { t.Add(result); i++; }
                    else t.Add(s[i]);
                }
                s = words[w] = [.. t];
                for (int i = 0; i + 1 < s.Length; i++)
                {
                    if (s[i] < 0 || s[i + 1] < 0) continue;
                    long k = Key(s[i], s[i + 1]);
                    counts[k] = counts.GetValueOrDefault(k) + f;
                    if (!where.TryGetValue(k, out var set)) where[k] = set = [];
                    set.Add(w);
                    changed.Add(k);
                }
            }
            foreach (long k in changed)
            {
                long c = counts[k];
                if (c <= 0) { counts.Remove(k); where.Remove(k); continue; }
                if (c >= minCount) heap.Enqueue(k, (-c, (int)(k >> 32), (int)k));
            }
        }
        return merges;
    }

    static long Key(int a, int b) => ((long)a << 32) | (uint)b;
}
