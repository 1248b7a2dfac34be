using Pare.Tensors;
using static Pare.LongContext.KeyValueHaystack;

namespace Pare.LongContext;

/// <summary>
/// Threading tasks of Needle Threading (Roberts et al. 2025) on the key-value haystack of <see cref="KeyValueHaystack"/>:
/// a thread is a chain of pairs k0 → k1 → ... → kH in which each value is the next pair's key; the question gives k0 and
/// asks for the last value. The thread's first link is placed at the requested depth, the other links at random pair
/// indices (so the thread runs forwards and backwards through the haystack). Multi-threading asks for several threads at once.
/// </summary>
public static class Threading
{
    public static NeedleSample Single(SplitMix64 rng, TokenText text, int length, double depth, int hops = 3) =>
        Build(rng, text, length, depth, threads: 1, hops);

    public static NeedleSample Multi(SplitMix64 rng, TokenText text, int length, double depth, int threads = 2, int hops = 3) =>
        Build(rng, text, length, depth, threads, hops);

    static NeedleSample Build(SplitMix64 rng, TokenText text, int length, double depth, int threads, int hops)
    {
        if (threads < 1 || hops < 1) throw new PareException("threading needs at least one thread of at least one hop");
        var keys = new KeySource(rng);
        var chains = new List<Pair[]>();
        for (int t = 0; t < threads; t++)
        {
            var ks = Enumerable.Range(0, hops + 1).Select(_ => keys.Next()).ToArray();
            chains.Add([.. Enumerable.Range(0, hops).Select(h => new Pair(ks[h], ks[h + 1]))]);
        }
        // Assemble places its needles as one cluster at the depth: give it the first links only (room reserved for the rest).
        var firstLinks = chains.Select(c => c[0]).ToArray();
        var links = chains.SelectMany(c => c.Skip(1)).ToList();
        string from = string.Join(", ", chains.Select(c => $"\"{c[0].Key}\""));
        string question = threads == 1
            ? $"\nFollow the thread from {from}: each value is the next key. The last value is \""
            : $"\nFollow the threads from {from}: each value is the next key. The last values are \"";
        Assemble(rng, text, keys, length, depth, firstLinks, text.Encode(question).Length + links.Sum(l => text.Encode(Line(l)).Length), out var pairs);
        // Rebuild the haystack from the pair list with the remaining links inserted at random indices.
        foreach (var link in links) pairs.Insert(rng.NextInt(pairs.Count + 1), link);
        int[] open = text.Encode("{"), close = text.Encode("\n}");
        var hay = new List<int>(open);
        var starts = new int[pairs.Count];
        for (int i = 0; i < pairs.Count; i++) { starts[i] = hay.Count; hay.AddRange(text.Encode(Line(pairs[i]))); }
        hay.AddRange(close);
        var gold = chains.Select(c => c[^1].Value).ToArray();
        var b = new Built([.. hay], [.. chains.Select(c => starts[pairs.IndexOf(c[0])])], open.Length);
        var sample = Finish(text, threads == 1 ? NeedleTask.Threading : NeedleTask.MultiThread, b, question, gold);
        if (sample.Prompt.Length > length) throw new PareException($"a length of {length} tokens is too short for this thread");
        return sample;
    }
}
